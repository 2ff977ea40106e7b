package dev.ferry.migration.ram;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.MigrationRegistry;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.core.migration.SaveStream;

import java.io.IOException;

/**
 * Guest RAM as a live save handler: QEMU's "ram" section, instance 0, version 4. Setup marks
 * everything dirty and starts every dirty-log source of the registry plus the VMM's own write log;
 * each iteration sends dirty pages under the rate limit; the exact pending figure syncs the logs;
 * completion syncs once more and sends the rest during downtime.
 */
public final class RamMigration implements LiveSaveHandler {
    private final GuestMemory memory;
    private final MigrationRegistry registry;
    private final RamCounters counters = new RamCounters();
    private volatile DirtySyncListener syncListener = (c, n) -> { };
    private RamSender sender;
    private RamReceiver receiver;
    private boolean inDowntime;

    public RamMigration(GuestMemory memory, MigrationRegistry registry) {
        this.memory = memory;
        this.registry = registry;
    }

    /** The machine's RAM handler, registered at {@link MigrationPriority#RAM} on first use. */
    public static synchronized RamMigration attach(Machine machine) {
        for (SaveEntry e : machine.migration().entries()) {
            if (e instanceof SaveEntry.Live live && live.handler() instanceof RamMigration r) {
                return r;
            }
        }
        RamMigration r = new RamMigration(machine.memory(), machine.migration());
        machine.migration().registerLive(r, MigrationPriority.RAM);
        return r;
    }

    public RamCounters counters() {
        return counters;
    }

    /** The engine's hook for MIGRATION_PASS and auto-converge. */
    public void setSyncListener(DirtySyncListener l) {
        this.syncListener = l;
    }

    @Override
    public String idstr() {
        return RamFlags.SECTION_ID;
    }

    @Override
    public int instanceId() {
        return 0;
    }

    @Override
    public int version() {
        return RamFlags.SECTION_VERSION;
    }

    @Override
    public void saveSetup(SaveStream out) throws IOException {
        counters.reset();
        inDowntime = false;
        sender = new RamSender(memory, registry::dirtyLogSources, counters, (c, n) -> syncListener.afterSync(c, n),
                registry::notifyPrecopy);
        registry.setFreePageHints(sender);
        long before = out.bytesWritten();
        try {
            sender.setup(out);
        } catch (IOException | RuntimeException e) {
            saveCleanup(false); // the engine cleans up only handlers whose setup returned
            throw e;
        }
        account(out.bytesWritten() - before);
    }

    @Override
    public boolean saveIterate(SaveStream out) throws IOException {
        long before = out.bytesWritten();
        boolean done = sender.send(out, false);
        account(out.bytesWritten() - before);
        return done;
    }

    @Override
    public long pendingEstimate() {
        return sender.remainingBytes();
    }

    @Override
    public long pendingExact() {
        sender.sync();
        return sender.remainingBytes();
    }

    @Override
    public void saveComplete(SaveStream out) throws IOException {
        inDowntime = true;
        long t0 = System.nanoTime();
        sender.sync(true);
        finalSyncNanos = System.nanoTime() - t0;
        long before = out.bytesWritten();
        sender.send(out, true);
        account(out.bytesWritten() - before);
    }

    private volatile long finalSyncNanos;

    /** How long the dirty-log sync of the last {@link #saveComplete} took (the final pass follows it). */
    public long finalSyncNanos() {
        return finalSyncNanos;
    }

    private void account(long bytes) {
        counters.bytesTransferred += bytes;
        if (inDowntime) {
            counters.downtimeBytes += bytes;
        } else {
            counters.precopyBytes += bytes;
        }
    }

    @Override
    public void saveCleanup(boolean succeeded) {
        if (sender != null) {
            registry.setFreePageHints(null);
            registry.notifyPrecopy(dev.ferry.core.migration.PrecopyNotifier.Step.CLEANUP, succeeded);
            sender.cleanup();
            sender = null;
        }
        inDowntime = false;
    }

    @Override
    public void loadSetup(LoadContext context) {
        counters.reset();
        receiver = new RamReceiver(memory);
    }

    @Override
    public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
        long before = in.bytesRead();
        receiver.load(in, versionId);
        counters.bytesTransferred += in.bytesRead() - before;
        counters.normalPages = receiver.pagesLoaded();
    }

    /** Nothing to check: every page record was checked (block, offset, flags) as it was read. */
    @Override
    public void loadComplete() {
    }

    @Override
    public void loadCleanup(boolean succeeded) {
        if (receiver != null) {
            receiver.close();
            receiver = null;
        }
    }

    @Override
    public boolean switchoverAckNeeded() {
        return false;
    }
}
