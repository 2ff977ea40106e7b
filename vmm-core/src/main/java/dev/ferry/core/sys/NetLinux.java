package dev.ferry.core.sys;

/**
 * Kernel constants and struct layouts of the network bindings ({@link Sockets}, {@link Tap}),
 * x86-64. Each one is checked against the host's headers by {@code NetHeaderProbeTest} when gcc
 * is present.
 * <pre>
 *   struct sockaddr_in (16):  u16 sin_family @0 | be16 sin_port @2 | be32 sin_addr @4 | zero[8]
 *   struct sockaddr_un (110): u16 sun_family @0 | char sun_path[108] @2
 *   struct ifreq (40):        char ifr_name[16] @0 | short ifr_flags @16 | (union to 40)
 *   struct msghdr (56):       void *msg_name @0 | u32 msg_namelen @8 | struct iovec *msg_iov @16 |
 *                             size_t msg_iovlen @24 | void *msg_control @32 | size_t msg_controllen @40 |
 *                             int msg_flags @48
 *   struct iovec (16):        void *iov_base @0 | size_t iov_len @8
 *   struct cmsghdr (16):      size_t cmsg_len @0 | int cmsg_level @8 | int cmsg_type @12 | data @16
 * </pre>
 */
public final class NetLinux {
    public static final int AF_UNIX = 1;
    public static final int AF_INET = 2;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_DGRAM = 2;
    public static final int SOCK_NONBLOCK = 04000;
    public static final int SOCK_CLOEXEC = 02000000;
    public static final int SOL_SOCKET = 1;
    public static final int SO_RCVBUF = 8;
    public static final int SO_SNDBUF = 7;
    public static final int MSG_DONTWAIT = 0x40;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_PEEK = 0x2;
    public static final int EINPROGRESS = 115;
    public static final int MSG_CTRUNC = 0x8;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;
    public static final int SCM_RIGHTS = 1;
    public static final int SHUT_RDWR = 2;

    public static final int MSGHDR_SIZE = 56;
    public static final int MSG_NAME_OFFSET = 0;
    public static final int MSG_NAMELEN_OFFSET = 8;
    public static final int MSG_IOV_OFFSET = 16;
    public static final int MSG_IOVLEN_OFFSET = 24;
    public static final int MSG_CONTROL_OFFSET = 32;
    public static final int MSG_CONTROLLEN_OFFSET = 40;
    public static final int MSG_FLAGS_OFFSET = 48;
    public static final int IOVEC_SIZE = 16;
    public static final int CMSGHDR_SIZE = 16;
    public static final int CMSG_LEN_OFFSET = 0;
    public static final int CMSG_LEVEL_OFFSET = 8;
    public static final int CMSG_TYPE_OFFSET = 12;

    public static final int SOCKADDR_IN_SIZE = 16;
    public static final int SIN_FAMILY_OFFSET = 0;
    public static final int SIN_PORT_OFFSET = 2;
    public static final int SIN_ADDR_OFFSET = 4;
    public static final int SOCKADDR_UN_SIZE = 110;
    public static final int SUN_PATH_OFFSET = 2;
    public static final int SUN_PATH_SIZE = 108;

    public static final int IFNAMSIZ = 16;
    public static final int IFREQ_SIZE = 40;
    public static final int IFR_FLAGS_OFFSET = 16;
    public static final int IFF_TAP = 0x0002;
    public static final int IFF_NO_PI = 0x1000;
    public static final int IFF_VNET_HDR = 0x4000;
    /** {@code _IOW('T', 202, int)}. */
    public static final long TUNSETIFF = 0x400454caL;
    /** {@code _IOW('T', 216, int)}. */
    public static final long TUNSETVNETHDRSZ = 0x400454d8L;

    private NetLinux() {
    }
}
