package dev.ferry.vfio.emulated;

/**
 * What an emulated device can be told to do wrong. The first group are failures a healthy
 * framework must survive (QEMU's recovery paths); the second are uAPI rule violations a vendor
 * check must catch.
 */
public enum FaultKind {
    // ---- failures the migration framework must handle ----
    /** {@code fail-set:STATE}: the arc into STATE fails with EIO; the device stays where it was. */
    FAIL_SET("fail-set", true),
    /** {@code error-set:STATE}: the arc into STATE fails with EIO and the device falls into ERROR. */
    ERROR_SET("error-set", true),
    /** {@code slow-set:STATE:MILLIS}: the arc into STATE takes MILLIS (default 200) longer. */
    SLOW_SET("slow-set", true),
    /** {@code fail-read}: the first data-fd read in STOP_COPY fails with EIO. */
    FAIL_READ("fail-read", false),
    /** {@code corrupt-data}: saved records carry a flipped byte after their digest was taken. */
    CORRUPT_DATA("corrupt-data", false),
    /** {@code reject-load}: RESUMING→STOP refuses even valid data (EINVAL). */
    REJECT_LOAD("reject-load", false),
    /** {@code fail-reset}: VFIO_DEVICE_RESET fails with EIO. */
    FAIL_RESET("fail-reset", false),

    // ---- uAPI rule violations (a vendor check must name them) ----
    /** {@code no-eof}: STOP_COPY reads report ENOMSG at the end instead of 0. */
    NO_EOF("no-eof", false),
    /** {@code eof-in-precopy}: PRE_COPY reads report 0 (end) instead of ENOMSG when idle. */
    EOF_IN_PRECOPY("eof-in-precopy", false),
    /** {@code bad-readback}: GET MIG_DEVICE_STATE keeps answering the state before the last SET. */
    BAD_READBACK("bad-readback", false),
    /** {@code accept-garbage}: RESUMING→STOP applies whatever was written without validating. */
    ACCEPT_GARBAGE("accept-garbage", false),
    /** {@code stale-fd}: a data fd keeps working after its session ended. */
    STALE_FD("stale-fd", false),
    /** {@code stuck-initial}: PRECOPY_INFO's initial_bytes never counts down. */
    STUCK_INITIAL("stuck-initial", false),
    /** {@code log-no-clear}: DMA_LOGGING_REPORT does not clear what it reported. */
    LOG_NO_CLEAR("log-no-clear", false),
    /** {@code lose-state}: the loaded device silently drops part of its internal state. */
    LOSE_STATE("lose-state", false);

    private final String flag;
    private final boolean needsState;

    FaultKind(String flag, boolean needsState) {
        this.flag = flag;
        this.needsState = needsState;
    }

    public String flag() {
        return flag;
    }

    public boolean needsState() {
        return needsState;
    }

    public static FaultKind byFlag(String flag) {
        for (FaultKind k : values()) {
            if (k.flag.equals(flag)) {
                return k;
            }
        }
        return null;
    }
}
