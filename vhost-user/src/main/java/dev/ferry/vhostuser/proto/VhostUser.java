package dev.ferry.vhostuser.proto;

/**
 * The vhost-user protocol's numbers (QEMU's {@code docs/interop/vhost-user.rst}): requests in both
 * directions, header flags, feature and protocol-feature bits, and the size each request's payload
 * must have. Everything here is what the specification fixes; payload layouts live in {@link Payloads}.
 */
public final class VhostUser {
    private VhostUser() {
    }

    /** Header: u32 request, u32 flags, u32 size. */
    public static final int HEADER_SIZE = 12;
    /** The largest payload a message may carry (QEMU and DPDK refuse more). */
    public static final int MAX_PAYLOAD = 4096;
    /** The most descriptors one message carries (VHOST_MEMORY_BASELINE_NREGIONS). */
    public static final int MAX_FDS = 8;
    /** Memory regions in one SET_MEM_TABLE. */
    public static final int MAX_MEM_REGIONS = 8;

    public static final int VERSION = 0x1;
    public static final int VERSION_MASK = 0x3;
    public static final int FLAG_REPLY = 1 << 2;
    public static final int FLAG_NEED_REPLY = 1 << 3;

    // ---- front-end requests ----
    public static final int GET_FEATURES = 1;
    public static final int SET_FEATURES = 2;
    public static final int SET_OWNER = 3;
    public static final int RESET_OWNER = 4;
    public static final int SET_MEM_TABLE = 5;
    public static final int SET_LOG_BASE = 6;
    public static final int SET_LOG_FD = 7;
    public static final int SET_VRING_NUM = 8;
    public static final int SET_VRING_ADDR = 9;
    public static final int SET_VRING_BASE = 10;
    public static final int GET_VRING_BASE = 11;
    public static final int SET_VRING_KICK = 12;
    public static final int SET_VRING_CALL = 13;
    public static final int SET_VRING_ERR = 14;
    public static final int GET_PROTOCOL_FEATURES = 15;
    public static final int SET_PROTOCOL_FEATURES = 16;
    public static final int GET_QUEUE_NUM = 17;
    public static final int SET_VRING_ENABLE = 18;
    public static final int SEND_RARP = 19;
    public static final int NET_SET_MTU = 20;
    public static final int SET_BACKEND_REQ_FD = 21;
    public static final int IOTLB_MSG = 22;
    public static final int SET_VRING_ENDIAN = 23;
    public static final int GET_CONFIG = 24;
    public static final int SET_CONFIG = 25;
    public static final int GET_INFLIGHT_FD = 31;
    public static final int SET_INFLIGHT_FD = 32;
    public static final int RESET_DEVICE = 34;
    public static final int GET_MAX_MEM_SLOTS = 36;
    public static final int ADD_MEM_REG = 37;
    public static final int REM_MEM_REG = 38;
    public static final int SET_STATUS = 39;
    public static final int GET_STATUS = 40;
    public static final int SET_DEVICE_STATE_FD = 42;
    public static final int CHECK_DEVICE_STATE = 43;

    // ---- back-end requests (on the BACKEND_REQ channel) ----
    public static final int BACKEND_IOTLB_MSG = 1;
    public static final int BACKEND_CONFIG_CHANGE_MSG = 2;
    public static final int BACKEND_VRING_HOST_NOTIFIER_MSG = 3;
    public static final int BACKEND_VRING_CALL = 4;
    public static final int BACKEND_VRING_ERR = 5;

    // ---- virtio feature bits with a vhost-user meaning ----
    public static final int F_LOG_ALL = 26;
    public static final int F_PROTOCOL_FEATURES = 30;

    // ---- protocol feature bits ----
    public static final int PF_MQ = 0;
    public static final int PF_LOG_SHMFD = 1;
    public static final int PF_RARP = 2;
    public static final int PF_REPLY_ACK = 3;
    public static final int PF_MTU = 4;
    public static final int PF_BACKEND_REQ = 5;
    public static final int PF_CROSS_ENDIAN = 6;
    public static final int PF_PAGEFAULT = 8;
    public static final int PF_CONFIG = 9;
    public static final int PF_BACKEND_SEND_FD = 10;
    public static final int PF_HOST_NOTIFIER = 11;
    public static final int PF_INFLIGHT_SHMFD = 12;
    public static final int PF_RESET_DEVICE = 13;
    public static final int PF_INBAND_NOTIFICATIONS = 14;
    public static final int PF_CONFIGURE_MEM_SLOTS = 15;
    public static final int PF_STATUS = 16;
    public static final int PF_DEVICE_STATE = 19;

    /** KICK/CALL/ERR payload: bits 0–7 the queue, bit 8 "no descriptor attached" (polling). */
    public static final long VRING_IDX_MASK = 0xff;
    public static final long VRING_NOFD_MASK = 1L << 8;
    /** SET_VRING_ADDR flags bit 0: log writes to the used ring at {@code log_guest_addr}. */
    public static final int VRING_F_LOG = 1;
    /** One dirty-log bit covers this many bytes of guest-physical memory. */
    public static final int LOG_PAGE = 4096;

    /** DEVICE_STATE transfer directions and phases. */
    public static final int TRANSFER_SAVE = 0;
    public static final int TRANSFER_LOAD = 1;
    public static final int PHASE_STOPPED = 0;
    /** SET_DEVICE_STATE_FD reply bit: the back-end returned no descriptor of its own. */
    public static final long DEVICE_STATE_NOFD = 1L << 8;

    public static long bit(int b) {
        return 1L << b;
    }

    public static boolean has(long features, int b) {
        return (features & (1L << b)) != 0;
    }

    /** The request's name as the specification spells it, for messages; unknown numbers as such. */
    public static String requestName(int request) {
        return switch (request) {
            case GET_FEATURES -> "GET_FEATURES";
            case SET_FEATURES -> "SET_FEATURES";
            case SET_OWNER -> "SET_OWNER";
            case RESET_OWNER -> "RESET_OWNER";
            case SET_MEM_TABLE -> "SET_MEM_TABLE";
            case SET_LOG_BASE -> "SET_LOG_BASE";
            case SET_LOG_FD -> "SET_LOG_FD";
            case SET_VRING_NUM -> "SET_VRING_NUM";
            case SET_VRING_ADDR -> "SET_VRING_ADDR";
            case SET_VRING_BASE -> "SET_VRING_BASE";
            case GET_VRING_BASE -> "GET_VRING_BASE";
            case SET_VRING_KICK -> "SET_VRING_KICK";
            case SET_VRING_CALL -> "SET_VRING_CALL";
            case SET_VRING_ERR -> "SET_VRING_ERR";
            case GET_PROTOCOL_FEATURES -> "GET_PROTOCOL_FEATURES";
            case SET_PROTOCOL_FEATURES -> "SET_PROTOCOL_FEATURES";
            case GET_QUEUE_NUM -> "GET_QUEUE_NUM";
            case SET_VRING_ENABLE -> "SET_VRING_ENABLE";
            case SEND_RARP -> "SEND_RARP";
            case NET_SET_MTU -> "NET_SET_MTU";
            case SET_BACKEND_REQ_FD -> "SET_BACKEND_REQ_FD";
            case IOTLB_MSG -> "IOTLB_MSG";
            case SET_VRING_ENDIAN -> "SET_VRING_ENDIAN";
            case GET_CONFIG -> "GET_CONFIG";
            case SET_CONFIG -> "SET_CONFIG";
            case GET_INFLIGHT_FD -> "GET_INFLIGHT_FD";
            case SET_INFLIGHT_FD -> "SET_INFLIGHT_FD";
            case RESET_DEVICE -> "RESET_DEVICE";
            case GET_MAX_MEM_SLOTS -> "GET_MAX_MEM_SLOTS";
            case ADD_MEM_REG -> "ADD_MEM_REG";
            case REM_MEM_REG -> "REM_MEM_REG";
            case SET_STATUS -> "SET_STATUS";
            case GET_STATUS -> "GET_STATUS";
            case SET_DEVICE_STATE_FD -> "SET_DEVICE_STATE_FD";
            case CHECK_DEVICE_STATE -> "CHECK_DEVICE_STATE";
            default -> "request " + request;
        };
    }

    /**
     * True for the requests whose reply is part of the request itself (GET_*, and the ones the
     * specification gives a payload reply): REPLY_ACK adds no second reply to these.
     */
    public static boolean hasOwnReply(int request) {
        return switch (request) {
            case GET_FEATURES, GET_PROTOCOL_FEATURES, GET_VRING_BASE, GET_QUEUE_NUM, GET_CONFIG, GET_INFLIGHT_FD,
                    GET_MAX_MEM_SLOTS, GET_STATUS, SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE -> true;
            default -> false;
        };
    }
}
