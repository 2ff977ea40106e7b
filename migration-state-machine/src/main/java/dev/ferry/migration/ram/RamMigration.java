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
    /** Source: the channels of the migration being set up (the engine owns and closes them). */
    private volatile MultifdSend multifdSend;
    private long multifdAccounted;
    /** Destination: accepted channels waiting for {@link #loadSetup}. */
    private java.util.List<MultifdReceive.Incoming> multifdIncoming;
    private java.util.function.Consumer<String> multifdFailure;

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

    /**
     * Source: sends pages over {@code channels} in the next migration (null: the main stream). The
     * engine opened them and closes them after {@link #saveCleanup}.
     */
    public void useMultifd(MultifdSend channels) {
        this.multifdSend = channels;
    }

    /**
     * Destination: the next load takes its pages from these channels (their openings read); they
     * start at {@link #loadSetup} and belong to this handler from then on. {@code onFailure} hears
     * a channel's first error, on the channel's thread.
     */
    public void prepareMultifd(java.util.List<MultifdReceive.Incoming> channels, java.util.function.Consumer<String> onFailure) {
        this.multifdIncoming = channels;
        this.multifdFailure = onFailure;
    }

    /** Destination: closes channels that were prepared but never started (the load failed before). */
    public void discardMultifd() {
        java.util.List<MultifdReceive.Incoming> left = multifdIncoming;
        multifdIncoming = null;
        if (left != null) {
            left.forEach(MultifdReceive.Incoming::close);
        }
    }

    @Override
    public void saveSetup(SaveStream out) throws IOException {
        counters.reset();
        inDowntime = false;
        multifdAccounted = 0;
        sender = new RamSender(memory, registry::dirtyLogSources, counters, (c, n) -> syncListener.afterSync(c, n),
                registry::notifyPrecopy);
        sender.useMultifd(multifdSend);
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
        MultifdSend m = multifdSend;
        if (m != null) {
            long sent = m.bytesSent();
            bytes += sent - multifdAccounted;
            multifdAccounted = sent;
            counters.multifdBytes = sent;
        }
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
        multifdSend = null;
        inDowntime = false;
    }

    @Override
    public void loadSetup(LoadContext context) {
        counters.reset();
        receiver = new RamReceiver(memory);
        java.util.List<MultifdReceive.Incoming> channels = multifdIncoming;
        multifdIncoming = null;
        if (channels != null) {
            receiver.useMultifd(channels, multifdFailure);
        }
    }

    @Override
    public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
        long before = in.bytesRead();
        receiver.load(in, versionId);
        counters.bytesTransferred += in.bytesRead() - before;
        counters.normalPages = receiver.pagesLoaded();
    }

    /**
     * Every page record was checked (block, offset, flags) as it was read; with multifd, the
     * channels must have stopped at the last synchronisation point, and they end here.
     */
    @Override
    public void loadComplete() throws MigrationException {
        MultifdReceive m = receiver == null ? null : receiver.multifd();
        if (m != null) {
            m.finish();
            counters.bytesTransferred += m.bytesRead();
            counters.multifdBytes = m.bytesRead();
            counters.normalPages = receiver.pagesLoaded();
        }
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
