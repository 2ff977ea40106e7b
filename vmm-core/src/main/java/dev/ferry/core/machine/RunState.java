package dev.ferry.core.machine;

/** The VM's run state, with QEMU's names (qapi {@code RunState}). */
public enum RunState {
    PRELAUNCH("prelaunch"),
    RUNNING("running"),
    PAUSED("paused"),
    FINISH_MIGRATE("finish-migrate"),
    INMIGRATE("inmigrate"),
    POSTMIGRATE("postmigrate"),
    RESTORE_VM("restore-vm"),
    SHUTDOWN("shutdown"),
    INTERNAL_ERROR("internal-error"),
    /** Stopped by a disk error under the {@code stop} error policy (QEMU's {@code io-error}). */
    IO_ERROR("io-error");

    private final String qapiName;

    RunState(String qapiName) {
        this.qapiName = qapiName;
    }

    public String qapiName() {
        return qapiName;
    }

    public boolean isRunning() {
        return this == RUNNING;
    }
}
