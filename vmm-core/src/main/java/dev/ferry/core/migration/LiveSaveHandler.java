package dev.ferry.core.migration;

import java.io.IOException;

/**
 * An iterable migration participant (QEMU's {@code SaveVMHandlers}): RAM, a VFIO device's data,
 * anything whose state is sent while the guest runs. The engine sends a START section around
 * {@link #saveSetup}, a PART section around each {@link #saveIterate}, an END section around
 * {@link #saveComplete}.
 *
 * <h2>Threads and run state</h2>
 * Source callbacks run on the migration thread. {@code saveSetup}, {@code saveIterate},
 * {@code pendingEstimate} and {@code pendingExact} run while the VM runs; {@code saveComplete}
 * runs in the downtime window, after every VM-change-state handler stopped the VM;
 * {@code saveCleanup} runs last on every path (success, failure, cancel) and may run after
 * the destination already runs. Destination callbacks run on the incoming thread while the VM is
 * in {@code inmigrate}: {@code loadSetup} once for every handler before the first section,
 * {@code loadState} per section, {@code loadComplete} once after EOF, {@code loadCleanup} on every
 * path.
 *
 * <p>No method has a silent default: a participant states what it does in every phase.
 */
public interface LiveSaveHandler {
    /** Section id string, e.g. {@code "ram"} or {@code "0000:00:05.0/vfio"}. */
    String idstr();

    int instanceId();

    /** Version written in the START section; the destination refuses a newer one. */
    int version();

    void saveSetup(SaveStream out) throws IOException, MigrationException;

    /**
     * Sends some of what is pending, stopping when {@link SaveStream#rateLimitReached()}.
     * Returns true when nothing is left to send at the moment.
     */
    boolean saveIterate(SaveStream out) throws IOException, MigrationException;

    /** Cheap estimate of bytes still to send, called every iteration (must not sync logs). */
    long pendingEstimate();

    /** Exact figure, may sync dirty logs; called only when the estimate is near switchover. */
    long pendingExact() throws MigrationException;

    /** Sends everything that is left; the VM is stopped. */
    void saveComplete(SaveStream out) throws IOException, MigrationException;

    /** Frees what the save side holds. {@code succeeded} tells whether the migration completed. */
    void saveCleanup(boolean succeeded);

    void loadSetup(LoadContext context) throws MigrationException;

    void loadState(LoadStream in, int versionId) throws IOException, MigrationException;

    /**
     * The whole stream is loaded (EOF, every section complete): check that the state this handler
     * took is one it can run with, and throw to refuse it. Runs on the incoming thread after the
     * last section and before the destination answers the source (SHUT on the return path) or
     * starts the VM, whatever autostart says: a refusal here fails the migration, and the source
     * keeps the guest. A VFIO device leaves RESUMING here, which is when the device validates
     * what was written to it. Not called when the load failed earlier.
     */
    void loadComplete() throws MigrationException;

    void loadCleanup(boolean succeeded);

    /** True when the destination must approve switchover for this handler (switchover-ack). */
    boolean switchoverAckNeeded();
}
