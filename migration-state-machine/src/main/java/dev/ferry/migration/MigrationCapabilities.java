package dev.ferry.migration;

/**
 * The qapi {@code MigrationCapability} flags Ferry implements. Ferry turns {@code return-path}
 * on by default (QEMU does not): the source reports completed only after the destination said it
 * loaded the state and runs. It is ignored on transports without a reverse direction (files).
 */
public record MigrationCapabilities(boolean events, boolean autoConverge, boolean returnPath, boolean switchoverAck,
                                    boolean multifd) {
    public static MigrationCapabilities defaults() {
        return new MigrationCapabilities(false, false, true, false, false);
    }

    public MigrationCapabilities withEvents(boolean v) {
        return new MigrationCapabilities(v, autoConverge, returnPath, switchoverAck, multifd);
    }

    public MigrationCapabilities withAutoConverge(boolean v) {
        return new MigrationCapabilities(events, v, returnPath, switchoverAck, multifd);
    }

    public MigrationCapabilities withReturnPath(boolean v) {
        return new MigrationCapabilities(events, autoConverge, v, switchoverAck, multifd);
    }

    public MigrationCapabilities withSwitchoverAck(boolean v) {
        return new MigrationCapabilities(events, autoConverge, returnPath, v, multifd);
    }

    /**
     * QEMU's {@code multifd}: RAM pages travel over {@code multifd-channels} extra connections,
     * each with a thread at both ends; both sides must turn it on with the same channel count.
     */
    public MigrationCapabilities withMultifd(boolean v) {
        return new MigrationCapabilities(events, autoConverge, returnPath, switchoverAck, v);
    }

    /** switchover-ack needs the return path, as in QEMU. */
    public void validate() {
        if (switchoverAck && !returnPath) {
            throw new IllegalArgumentException("Capability 'switchover-ack' requires capability 'return-path'");
        }
    }
}
