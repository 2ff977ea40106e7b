package dev.ferry.migration;

/** qapi {@code MigrationStatus}, with QEMU's names. */
public enum MigrationStatus {
    NONE("none"),
    SETUP("setup"),
    CANCELLING("cancelling"),
    CANCELLED("cancelled"),
    ACTIVE("active"),
    POSTCOPY_ACTIVE("postcopy-active"),
    POSTCOPY_PAUSED("postcopy-paused"),
    POSTCOPY_RECOVER_SETUP("postcopy-recover-setup"),
    POSTCOPY_RECOVER("postcopy-recover"),
    COMPLETED("completed"),
    FAILED("failed"),
    COLO("colo"),
    PRE_SWITCHOVER("pre-switchover"),
    DEVICE("device"),
    WAIT_UNPLUG("wait-unplug");

    private final String qapiName;

    MigrationStatus(String qapiName) {
        this.qapiName = qapiName;
    }

    public String qapiName() {
        return qapiName;
    }

    /** True for states a migration never leaves. */
    public boolean isFinal() {
        return this == COMPLETED || this == FAILED || this == CANCELLED;
    }

    /** True while a migration is under way (QEMU's migration_is_running). */
    public boolean isRunning() {
        return switch (this) {
            case SETUP, ACTIVE, CANCELLING, PRE_SWITCHOVER, DEVICE, WAIT_UNPLUG -> true;
            default -> false;
        };
    }

    /**
     * The transitions Ferry's drivers make (a subset of QEMU's: no postcopy, COLO or
     * wait-unplug). Source: none → setup → active → device → completed, with failed or
     * cancelling reachable from each running state; cancelling ends cancelled — or completed,
     * when the destination had already confirmed it runs (then the source must not resume).
     * Destination: none → setup → active → completed, or failed from setup and active.
     * <pre>
     * from \ to   setup active device completed failed cancelling cancelled
     * none          x
     * setup                x                      x       x
     * active                      x      x        x       x
     * device                             x        x       x
     * cancelling                         x                           x
     * </pre>
     */
    public boolean canBecome(MigrationStatus next) {
        return switch (this) {
            case NONE -> next == SETUP;
            case SETUP -> next == ACTIVE || next == FAILED || next == CANCELLING;
            case ACTIVE -> next == DEVICE || next == COMPLETED || next == FAILED || next == CANCELLING;
            case DEVICE -> next == COMPLETED || next == FAILED || next == CANCELLING;
            case CANCELLING -> next == CANCELLED || next == COMPLETED;
            default -> false;
        };
    }

    public static MigrationStatus fromQapi(String name) {
        for (MigrationStatus s : values()) {
            if (s.qapiName.equals(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown migration status '" + name + "'");
    }
}
