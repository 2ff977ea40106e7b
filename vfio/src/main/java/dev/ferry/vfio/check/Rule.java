package dev.ferry.vfio.check;

/**
 * The promises of the VFIO migration uAPI that {@link VfioCheck} holds a device to, each with the
 * id a report names when it is broken ({@code "rule eof violated: ..."}) and a one-line statement.
 * The statements paraphrase {@code include/uapi/linux/vfio.h}; {@link #ARC_BUDGET} and
 * {@link #NO_HANG} are Ferry's own: the uAPI sets no time limits, but a migration driver needs
 * bounded arcs (see {@link VfioCheck.Options#arcBudget()}).
 */
public enum Rule {
    OPEN("open", "GET MIGRATION reports STOP_COPY, and a newly opened device is RUNNING"),
    ARCS("arcs", "every arc the device's migration flags make legal succeeds"),
    READBACK("readback", "GET MIG_DEVICE_STATE equals the state just SET"),
    FAILED_SET("failed-set", "after a failed SET, GET reports the start state, a state on the requested path, or ERROR"),
    REFUSE("refuse", "requests the arc table refuses fail with EINVAL and leave the state unchanged"),
    SESSION_FD("session-fd", "a data fd opens exactly on RUNNING\u2192PRE_COPY, RUNNING_P2P\u2192PRE_COPY_P2P,"
            + " STOP\u2192STOP_COPY, STOP\u2192RESUMING, lives through the saving group, and fails with ENODEV"
            + " once its session ends (by an arc or a reset)"),
    READ("read", "reads of a saving data fd return data, the end (0) or, in PRE_COPY*, ENOMSG; never an error"),
    ENOMSG("enomsg", "an idle PRE_COPY read is -1/ENOMSG, never 0"),
    EOF("eof", "STOP_COPY reads end with 0 and stay 0, never ENOMSG"),
    PRECOPY_INFO("precopy-info", "PRECOPY_INFO works in PRE_COPY* and fails with EINVAL in STOP_COPY; initial_bytes"
            + " never grows and is 0 once reads return ENOMSG"),
    RESUME_VALIDATES("resume-validates", "RESUMING\u2192STOP rejects garbage and truncated data"),
    LOAD("load", "saved state loads into a fresh instance, which then behaves as the saved one"),
    DMA_LOG("dma-log", "DMA_LOGGING_REPORT sets bits for the pages the device wrote, never clears the caller's bits,"
            + " and clears what it reported"),
    RESET("reset", "VFIO_DEVICE_RESET leaves any state, ERROR included, for RUNNING"),
    ARC_BUDGET("arc-budget", "each arc's median latency stays within the arc budget"),
    NO_HANG("no-hang", "every device call returns within the call timeout");

    private final String id;
    private final String statement;

    Rule(String id, String statement) {
        this.id = id;
        this.statement = statement;
    }

    /** The short name reports use, e.g. {@code "eof"}. */
    public String id() {
        return id;
    }

    /** The promise in one line. */
    public String statement() {
        return statement;
    }

    public static Rule byId(String id) {
        for (Rule r : values()) {
            if (r.id.equals(id)) {
                return r;
            }
        }
        throw new IllegalArgumentException("no rule '" + id + "'");
    }
}
