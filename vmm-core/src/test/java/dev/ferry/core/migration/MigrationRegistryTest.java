package dev.ferry.core.migration;

import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.core.memory.DirtyPages;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MigrationRegistryTest {
    private static final VmStateDescription<Object> EMPTY = VmStateDescription.builder("empty", 1).build();

    /** A live handler that only has an identity; the registry never calls anything else. */
    private record IdOnly(String idstr, int instanceId) implements LiveSaveHandler {
        @Override
        public int version() {
            return 4;
        }

        @Override
        public void saveSetup(SaveStream out) {
            throw new UnsupportedOperationException();
        }

        @Override
        public boolean saveIterate(SaveStream out) {
            throw new UnsupportedOperationException();
        }

        @Override
        public long pendingEstimate() {
            throw new UnsupportedOperationException();
        }

        @Override
        public long pendingExact() {
            throw new UnsupportedOperationException();
        }

        @Override
        public void saveComplete(SaveStream out) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void saveCleanup(boolean succeeded) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void loadSetup(LoadContext context) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void loadState(LoadStream in, int versionId) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void loadComplete() {
            throw new UnsupportedOperationException();
        }

        @Override
        public void loadCleanup(boolean succeeded) {
            throw new UnsupportedOperationException();
        }

        @Override
        public boolean switchoverAckNeeded() {
            return false;
        }
    }

    private static List<String> order(MigrationRegistry r) {
        return r.entries().stream().map(e -> e.idstr() + "/" + e.instanceId()).toList();
    }

    @Test
    void entriesComeByDescendingPriorityWithTiesInRegistrationOrder() {
        MigrationRegistry r = new MigrationRegistry();
        r.registerVmState("a", 0, EMPTY, new Object(), MigrationPriority.RAM);
        r.registerVmState("b", 0, EMPTY, new Object(), MigrationPriority.DMA_DEVICE);
        r.registerVmState("c", 0, EMPTY, new Object(), MigrationPriority.RAM);
        r.registerVmState("cpu", 0, EMPTY, new Object(), MigrationPriority.CPU);
        r.registerLive(new IdOnly("ram", 0), MigrationPriority.RAM);
        r.registerVmState("e", 0, EMPTY, new Object(), MigrationPriority.DMA_DEVICE);
        r.registerVmState("dev", 1, EMPTY, new Object(), MigrationPriority.DEVICE);
        r.registerVmState("dev", 0, EMPTY, new Object(), MigrationPriority.DEVICE);
        assertEquals(List.of("b/0", "e/0", "dev/1", "dev/0", "a/0", "c/0", "ram/0", "cpu/0"), order(r));
        assertEquals(order(r), order(r), "asking twice gives the same order");
    }

    @Test
    void entriesCarryTheirKindAndVersion() {
        MigrationRegistry r = new MigrationRegistry();
        IdOnly ram = new IdOnly("ram", 0);
        r.registerLive(ram, MigrationPriority.RAM);
        r.registerVmState("dev", 0, VmStateDescription.builder("dev", 7).build(), new Object(), MigrationPriority.DEVICE);
        List<SaveEntry> entries = r.entries();
        assertInstanceOf(SaveEntry.VmState.class, entries.get(0));
        assertEquals(7, entries.get(0).version());
        assertSame(ram, ((SaveEntry.Live) entries.get(1)).handler());
        assertEquals(4, entries.get(1).version());
    }

    @Test
    void sameIdstrAndInstanceTwiceIsRefused() {
        MigrationRegistry r = new MigrationRegistry();
        r.registerVmState("virtio-net", 0, EMPTY, new Object(), MigrationPriority.DEVICE);
        r.registerVmState("virtio-net", 1, EMPTY, new Object(), MigrationPriority.DEVICE);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> r.registerVmState("virtio-net", 1, EMPTY, new Object(), MigrationPriority.DEVICE));
        assertTrue(e.getMessage().contains("virtio-net") && e.getMessage().contains("1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> r.registerLive(new IdOnly("virtio-net", 0), 0),
                "a live handler and a vmstate share one namespace of sections");
        assertEquals(2, r.entries().size());

        r.unregister("virtio-net", 1);
        r.registerVmState("virtio-net", 1, EMPTY, new Object(), MigrationPriority.DEVICE);
        assertEquals(List.of("virtio-net/0", "virtio-net/1"), order(r));
    }

    @Test
    void idstrLongerThan255BytesIsRefused() {
        MigrationRegistry r = new MigrationRegistry();
        r.registerVmState("x".repeat(255), 0, EMPTY, new Object(), 0);
        assertThrows(IllegalArgumentException.class, () -> r.registerVmState("y".repeat(256), 0, EMPTY, new Object(), 0));
        // The limit is the stream's u8 length: bytes, not characters.
        assertThrows(IllegalArgumentException.class, () -> r.registerLive(new IdOnly("é".repeat(128), 0), 0));
        assertEquals(1, r.entries().size());
    }

    @Test
    void sourcesNotifiersAndBlockersComeAndGo() {
        MigrationRegistry r = new MigrationRegistry();
        DirtyLogSource source = new DirtyLogSource() {
            @Override
            public String name() {
                return "vfio0 dma";
            }

            @Override
            public void start() {
            }

            @Override
            public void sync(DirtyPages target) {
            }

            @Override
            public void stop() {
            }
        };
        MigrationNotifier notifier = event -> { };
        MigrationBlocker blocker = new MigrationBlocker("vfio0: device lacks STOP_COPY");
        r.addDirtyLogSource(source);
        r.addNotifier(notifier);
        r.addBlocker(blocker);
        assertEquals(List.of(source), r.dirtyLogSources());
        assertEquals(List.of(notifier), r.notifiers());
        assertEquals(List.of(blocker), r.blockers());
        assertThrows(UnsupportedOperationException.class, () -> r.blockers().clear(), "callers get a snapshot");
        r.removeDirtyLogSource(source);
        r.removeNotifier(notifier);
        r.removeBlocker(blocker);
        assertTrue(r.dirtyLogSources().isEmpty() && r.notifiers().isEmpty() && r.blockers().isEmpty());
    }
}
