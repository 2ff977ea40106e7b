package dev.ferry.vhostuser.check;

/**
 * The promises of the vhost-user protocol that {@link VhostUserCheck} holds a back-end to, each
 * with the id a report names when it is broken ({@code "rule dirty-log violated: ..."}) and a
 * one-line statement. The statements paraphrase QEMU's {@code docs/interop/vhost-user.rst} and the
 * migration sequence QEMU drives ({@code hw/virtio/vhost.c}); a back-end that breaks one loses
 * data, hangs or corrupts a guest when it is migrated.
 */
public enum CheckRule {
    NEGOTIATION("negotiation", "GET_FEATURES offers VERSION_1 and PROTOCOL_FEATURES, GET_PROTOCOL_FEATURES answers,"
            + " and the features the check sets are accepted"),
    REPLY("reply", "every reply has flags exactly 0x5 and names its request; with REPLY_ACK, a well-formed request"
            + " asking for a reply is acknowledged with 0"),
    MIGRATABLE("migratable", "feature LOG_ALL and protocol feature LOG_SHMFD are offered (else QEMU blocks migration)"),
    TRAFFIC("traffic", "requests on the ring are served while logging is on, and the data comes back as written"),
    DIRTY_LOG("dirty-log", "every guest page the back-end writes (buffers and used ring) has its bit in the shared"
            + " log"),
    VRING_BASE("vring-base", "GET_VRING_BASE stops the ring (later requests are not served) and returns the number"
            + " of available entries consumed"),
    RESUME("resume", "a ring restored with SET_VRING_BASE(that index) serves the next request and none of the"
            + " earlier ones again"),
    DRAIN("drain", "GET_VRING_BASE with requests in flight replies only once every request it counts as consumed is"
            + " completed (used.idx equals the index it returns), and nothing is written after the reply"),
    DISABLE("disable", "after SET_VRING_ENABLE(0) requests change no guest page until the ring is enabled again,"
            + " and are then served"),
    MALFORMED("malformed", "a malformed request (wrong payload size, ring index out of range, bad memory-table"
            + " count) is refused (nack or hang-up), and a new well-formed connection is still served");

    private final String id;
    private final String statement;

    CheckRule(String id, String statement) {
        this.id = id;
        this.statement = statement;
    }

    /** The short name reports use, e.g. {@code "dirty-log"}. */
    public String id() {
        return id;
    }

    /** The promise in one line. */
    public String statement() {
        return statement;
    }

    public static CheckRule byId(String id) {
        for (CheckRule r : values()) {
            if (r.id.equals(id)) {
                return r;
            }
        }
        throw new IllegalArgumentException("no rule '" + id + "'");
    }
}
