package dev.ferry.core.migration;

import dev.ferry.core.memory.DirtyLogSource;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Everything a VM exposes to migration: save entries in priority order, dirty-log sources,
 * notifiers and blockers. Devices register here at realize time; the engine only reads it. The
 * engine never knows a device class — this registry is the whole contract.
 */
public final class MigrationRegistry {
    private final List<SaveEntry> entries = new CopyOnWriteArrayList<>();
    private final List<DirtyLogSource> dirtyLogSources = new CopyOnWriteArrayList<>();
    private final List<MigrationNotifier> notifiers = new CopyOnWriteArrayList<>();
    private final List<MigrationBlocker> blockers = new CopyOnWriteArrayList<>();
    private final List<PrecopyNotifier> precopyNotifiers = new CopyOnWriteArrayList<>();
    private volatile FreePageHints freePageHints;

    public void registerLive(LiveSaveHandler handler, int priority) {
        add(new SaveEntry.Live(handler, priority));
    }

    public <T> void registerVmState(String idstr, int instanceId, VmStateDescription<T> description, T state,
                                    int priority) {
        add(new SaveEntry.VmState<>(idstr, instanceId, description, state, priority));
    }

    /**
     * As {@link #registerVmState}, but a stream that lacks it still loads: for state a
     * destination can do without (the source's run state, which an older stream did not carry).
     */
    public <T> void registerOptionalVmState(String idstr, int instanceId, VmStateDescription<T> description, T state,
                                            int priority) {
        add(new SaveEntry.VmState<>(idstr, instanceId, description, state, priority, true));
    }

    private synchronized void add(SaveEntry e) {
        if (e.idstr().getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 255) {
            throw new IllegalArgumentException("section idstr longer than 255 bytes: " + e.idstr());
        }
        for (SaveEntry x : entries) {
            if (x.idstr().equals(e.idstr()) && x.instanceId() == e.instanceId()) {
                throw new IllegalArgumentException("section " + e.idstr() + " instance " + e.instanceId()
                        + " registered twice");
            }
        }
        entries.add(e);
    }

    public synchronized void unregister(String idstr, int instanceId) {
        entries.removeIf(e -> e.idstr().equals(idstr) && e.instanceId() == instanceId);
    }

    /** Entries by descending priority, ties in registration order. */
    public List<SaveEntry> entries() {
        List<SaveEntry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingInt(SaveEntry::priority).reversed());
        return sorted;
    }

    public void addDirtyLogSource(DirtyLogSource source) {
        dirtyLogSources.add(source);
    }

    public void removeDirtyLogSource(DirtyLogSource source) {
        dirtyLogSources.remove(source);
    }

    public List<DirtyLogSource> dirtyLogSources() {
        return List.copyOf(dirtyLogSources);
    }

    public void addNotifier(MigrationNotifier n) {
        notifiers.add(n);
    }

    public void removeNotifier(MigrationNotifier n) {
        notifiers.remove(n);
    }

    public List<MigrationNotifier> notifiers() {
        return List.copyOf(notifiers);
    }

    public void addBlocker(MigrationBlocker b) {
        blockers.add(b);
    }

    public void removeBlocker(MigrationBlocker b) {
        blockers.remove(b);
    }

    public List<MigrationBlocker> blockers() {
        return List.copyOf(blockers);
    }

    public void addPrecopyNotifier(PrecopyNotifier n) {
        precopyNotifiers.add(n);
    }

    public void removePrecopyNotifier(PrecopyNotifier n) {
        precopyNotifiers.remove(n);
    }

    /** Tells every precopy notifier about {@code step}, in registration order. Migration thread. */
    public void notifyPrecopy(PrecopyNotifier.Step step, boolean vmStopped) {
        for (PrecopyNotifier n : precopyNotifiers) {
            try {
                n.onPrecopy(step, vmStopped);
            } catch (RuntimeException e) {
                org.slf4j.LoggerFactory.getLogger(MigrationRegistry.class).warn("precopy notifier failed at {}: {}",
                        step, e.toString());
            }
        }
    }

    /** RAM migration installs its pending set while it runs and removes it (null) when it ends. */
    public void setFreePageHints(FreePageHints hints) {
        this.freePageHints = hints;
    }

    /**
     * A device's free page hint for {@code [gpa, gpa + length)}: the pages leave the running RAM
     * migration's pending set. Returns the pages cleared; 0 when no RAM migration runs.
     *
     * @throws IllegalArgumentException when the range is not inside guest RAM
     */
    public long guestFreePageHint(long gpa, long length) {
        FreePageHints h = freePageHints;
        return h == null ? 0 : h.clearPending(gpa, length);
    }
}
