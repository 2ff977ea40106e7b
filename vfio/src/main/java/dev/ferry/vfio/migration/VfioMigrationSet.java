package dev.ferry.vfio.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.migration.MigrationBlocker;
import dev.ferry.vfio.fsm.MigCapabilities;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The VFIO devices attached to one machine, and QEMU's rule over them
 * ({@code vfio_block_multiple_devices_migration}): more than one migratable VFIO device can migrate
 * only if every one of them has P2P — without the *_P2P states one device could still DMA into a
 * peer that has already stopped. Otherwise the machine gets a blocker, re-evaluated whenever a
 * device is attached or detached. Devices that cannot migrate at all have their own blocker and do
 * not count.
 *
 * <p>One set per machine, created with the machine's first VFIO device and dropped with its last.
 * Thread-safe.
 */
public final class VfioMigrationSet {
    private static final Map<Machine, VfioMigrationSet> SETS = new IdentityHashMap<>();

    private final Machine machine;
    private final List<VfioMigration> members = new ArrayList<>();
    private MigrationBlocker blocker;

    private VfioMigrationSet(Machine machine) {
        this.machine = machine;
    }

    /** The set of {@code machine}'s VFIO devices (empty when it has none). */
    public static VfioMigrationSet of(Machine machine) {
        synchronized (SETS) {
            return SETS.computeIfAbsent(machine, VfioMigrationSet::new);
        }
    }

    public synchronized List<VfioMigration> members() {
        return List.copyOf(members);
    }

    /** Every device's statistics, in attach order, for {@code query-migrate}. */
    public List<VfioMigrationStats.Snapshot> stats() {
        return members().stream().map(VfioMigration::stats).toList();
    }

    /** The multi-device blocker, while it applies. */
    public synchronized Optional<MigrationBlocker> blocker() {
        return Optional.ofNullable(blocker);
    }

    synchronized void add(VfioMigration m) {
        members.add(m);
        reevaluate();
    }

    void remove(VfioMigration m) {
        synchronized (this) {
            members.remove(m);
            reevaluate();
            if (!members.isEmpty()) {
                return;
            }
        }
        synchronized (SETS) {
            synchronized (this) {
                if (members.isEmpty()) {
                    SETS.remove(machine, this);
                }
            }
        }
    }

    private void reevaluate() {
        List<String> migratable = new ArrayList<>();
        List<String> withoutP2p = new ArrayList<>();
        for (VfioMigration m : members) {
            Optional<MigCapabilities> caps = m.capabilities();
            if (caps.isPresent()) {
                migratable.add(m.name());
                if (!caps.get().hasAll(MigCapabilities.P2P)) {
                    withoutP2p.add(m.name());
                }
            }
        }
        MigrationBlocker want = migratable.size() > 1 && !withoutP2p.isEmpty()
                ? new MigrationBlocker(String.join(", ", migratable) + ": more than one VFIO device migrates only if"
                + " all of them support P2P migration, and " + String.join(", ", withoutP2p)
                + (withoutP2p.size() == 1 ? " does" : " do") + " not")
                : null;
        if (blocker != null && !blocker.equals(want)) {
            machine.migration().removeBlocker(blocker);
            blocker = null;
        }
        if (want != null && blocker == null) {
            blocker = want;
            machine.migration().addBlocker(want);
        }
    }
}
