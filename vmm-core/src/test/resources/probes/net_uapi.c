/*
 * Prints the socket and TUN/TAP constants and struct layouts dev.ferry.core.sys.NetLinux mirrors,
 * as the host's headers define them; NetHeaderProbeTest maps each Java constant to a key here.
 */
#define _GNU_SOURCE
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <errno.h>

#include "ferry_probe.h"

int main(void) {
    FERRY_PROBE(AF_UNIX);
    FERRY_PROBE(AF_INET);
    FERRY_PROBE(SOCK_STREAM);
    FERRY_PROBE(SOCK_DGRAM);
    FERRY_PROBE(SOCK_NONBLOCK);
    FERRY_PROBE(SOCK_CLOEXEC);
    FERRY_PROBE(SOL_SOCKET);
    FERRY_PROBE(SO_RCVBUF);
    FERRY_PROBE(SO_SNDBUF);
    FERRY_PROBE(MSG_DONTWAIT);
    FERRY_PROBE(MSG_NOSIGNAL);
    FERRY_PROBE(MSG_PEEK);
    FERRY_PROBE(EINPROGRESS);
    FERRY_SIZEOF("sizeof(struct_sockaddr_in)", struct sockaddr_in);
    FERRY_OFFSETOF("offsetof(sockaddr_in,sin_family)", struct sockaddr_in, sin_family);
    FERRY_OFFSETOF("offsetof(sockaddr_in,sin_port)", struct sockaddr_in, sin_port);
    FERRY_OFFSETOF("offsetof(sockaddr_in,sin_addr)", struct sockaddr_in, sin_addr);
    FERRY_SIZEOF("sizeof(struct_sockaddr_un)", struct sockaddr_un);
    FERRY_OFFSETOF("offsetof(sockaddr_un,sun_path)", struct sockaddr_un, sun_path);
    FERRY_PROBE_AS("sizeof(sockaddr_un.sun_path)", sizeof(((struct sockaddr_un *)0)->sun_path));
    FERRY_PROBE(IFNAMSIZ);
    FERRY_SIZEOF("sizeof(struct_ifreq)", struct ifreq);
    FERRY_OFFSETOF("offsetof(ifreq,ifr_flags)", struct ifreq, ifr_flags);
    FERRY_PROBE(IFF_TAP);
    FERRY_PROBE(IFF_NO_PI);
    FERRY_PROBE(IFF_VNET_HDR);
    FERRY_PROBE(TUNSETIFF);
    FERRY_PROBE(TUNSETVNETHDRSZ);
    FERRY_PROBE(MSG_CTRUNC);
    FERRY_PROBE(MSG_CMSG_CLOEXEC);
    FERRY_PROBE(SCM_RIGHTS);
    FERRY_PROBE(SHUT_RDWR);
    FERRY_SIZEOF("sizeof(struct_msghdr)", struct msghdr);
    FERRY_OFFSETOF("offsetof(msghdr,msg_name)", struct msghdr, msg_name);
    FERRY_OFFSETOF("offsetof(msghdr,msg_namelen)", struct msghdr, msg_namelen);
    FERRY_OFFSETOF("offsetof(msghdr,msg_iov)", struct msghdr, msg_iov);
    FERRY_OFFSETOF("offsetof(msghdr,msg_iovlen)", struct msghdr, msg_iovlen);
    FERRY_OFFSETOF("offsetof(msghdr,msg_control)", struct msghdr, msg_control);
    FERRY_OFFSETOF("offsetof(msghdr,msg_controllen)", struct msghdr, msg_controllen);
    FERRY_OFFSETOF("offsetof(msghdr,msg_flags)", struct msghdr, msg_flags);
    FERRY_SIZEOF("sizeof(struct_iovec)", struct iovec);
    FERRY_SIZEOF("sizeof(struct_cmsghdr)", struct cmsghdr);
    FERRY_OFFSETOF("offsetof(cmsghdr,cmsg_len)", struct cmsghdr, cmsg_len);
    FERRY_OFFSETOF("offsetof(cmsghdr,cmsg_level)", struct cmsghdr, cmsg_level);
    FERRY_OFFSETOF("offsetof(cmsghdr,cmsg_type)", struct cmsghdr, cmsg_type);
    FERRY_PROBE_AS("CMSG_DATA_OFFSET", (long) ((unsigned char *) CMSG_DATA((struct cmsghdr *) 0) - (unsigned char *) 0));
    return 0;
}
