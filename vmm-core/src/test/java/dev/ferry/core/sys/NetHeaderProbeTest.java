package dev.ferry.core.sys;

import dev.ferry.core.testing.CProbe;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@link NetLinux}'s socket and TUN/TAP constants and struct layouts against the host's headers (gcc). */
class NetHeaderProbeTest {
    @Test
    void constantsAndLayoutsMatchTheHeaders() {
        assumeTrue(CProbe.gccAvailable(), CProbe.NO_GCC);
        assumeTrue(CProbe.headerAvailable("linux/if_tun.h"),
                "linux/if_tun.h not found: the kernel's uAPI headers are needed (apt-get install linux-libc-dev)");
        Map<String, String> keys = new LinkedHashMap<>();
        for (String same : List.of("AF_UNIX", "AF_INET", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_NONBLOCK", "SOCK_CLOEXEC",
                "SOL_SOCKET", "SO_RCVBUF", "SO_SNDBUF", "MSG_DONTWAIT", "MSG_NOSIGNAL", "MSG_PEEK", "EINPROGRESS",
                "IFNAMSIZ", "MSG_CTRUNC", "MSG_CMSG_CLOEXEC", "SCM_RIGHTS", "SHUT_RDWR", "IFF_TAP", "IFF_NO_PI", "IFF_VNET_HDR", "TUNSETIFF", "TUNSETVNETHDRSZ")) {
            keys.put(same, same);
        }
        keys.put("SOCKADDR_IN_SIZE", "sizeof(struct_sockaddr_in)");
        keys.put("SIN_FAMILY_OFFSET", "offsetof(sockaddr_in,sin_family)");
        keys.put("SIN_PORT_OFFSET", "offsetof(sockaddr_in,sin_port)");
        keys.put("SIN_ADDR_OFFSET", "offsetof(sockaddr_in,sin_addr)");
        keys.put("SOCKADDR_UN_SIZE", "sizeof(struct_sockaddr_un)");
        keys.put("SUN_PATH_OFFSET", "offsetof(sockaddr_un,sun_path)");
        keys.put("SUN_PATH_SIZE", "sizeof(sockaddr_un.sun_path)");
        keys.put("IFREQ_SIZE", "sizeof(struct_ifreq)");
        keys.put("IFR_FLAGS_OFFSET", "offsetof(ifreq,ifr_flags)");
        keys.put("MSGHDR_SIZE", "sizeof(struct_msghdr)");
        for (String f : List.of("name", "namelen", "iov", "iovlen", "control", "controllen", "flags")) {
            keys.put("MSG_" + f.toUpperCase(java.util.Locale.ROOT) + "_OFFSET", "offsetof(msghdr,msg_" + f + ")");
        }
        keys.put("IOVEC_SIZE", "sizeof(struct_iovec)");
        keys.put("CMSGHDR_SIZE", "CMSG_DATA_OFFSET");
        keys.put("CMSG_LEN_OFFSET", "offsetof(cmsghdr,cmsg_len)");
        keys.put("CMSG_LEVEL_OFFSET", "offsetof(cmsghdr,cmsg_level)");
        keys.put("CMSG_TYPE_OFFSET", "offsetof(cmsghdr,cmsg_type)");
        List<String> problems = CProbe.compareConstants(NetLinux.class, keys, CProbe.runResource("/probes/net_uapi.c"));
        assertTrue(problems.isEmpty(), String.join("\n", problems));
    }
}
