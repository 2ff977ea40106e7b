package dev.ferry.core.migration;

/** What the destination's engine offers load handlers. */
public interface LoadContext {
    /**
     * Tells the source that this handler's precopy-initial data is loaded (QEMU's
     * {@code qemu_loadvm_approve_switchover}); the source does not stop the VM until every
     * handler that {@linkplain LiveSaveHandler#switchoverAckNeeded() needs it} has approved.
     */
    void approveSwitchover();
}
