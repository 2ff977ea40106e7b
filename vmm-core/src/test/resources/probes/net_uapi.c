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
    return 0;
}
