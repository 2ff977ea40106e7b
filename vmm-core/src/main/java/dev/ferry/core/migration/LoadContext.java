package dev.ferry.core.migration;

/** What the destination's engine offers load handlers. */
public interface LoadContext {
    /**
     * Tells the source that this handler's precopy-initial data is loaded (QEMU's
     * {@code qemu_loadvm_approve_switchover}); the source does not stop the VM until every
     * handler that {@linkplain LiveSaveHandler#switchoverAckNeeded() needs it} has approved.
     */
    void approveSwitchover();

    /**
     * True when this incoming migration uses switchover-ack (QEMU's {@code migrate_switchover_ack()}
     * on the destination): a handler refuses an approval request from a source that should not
     * have sent one, since the two sides disagree about the migration's capabilities.
     */
    default boolean switchoverAck() {
        return false;
    }
}
