package dev.ferry.migration.ram;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.InMemoryMigration.Incoming;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guest RAM and device state survive a whole migration through the real engine: a source VM
 * with random page contents saves into a {@link MemoryTransports} file, a destination VM loads
 * it, and both sides' memory digests and device states are equal.
 */
@Timeout(60)
class RamRoundTripTest {
    private static final long MIB = 1 << 20;

    private static TestVm.Builder layout(String name) {
        return TestVm.builder(name).region("pc.ram", 0, 4 * MIB).region("pc.bios", 0xfffc0000L, 256 << 10);
    }

    private static TestDevice randomDevice() {
        return new TestDevice().id(0xcafe0001).counter(0xfedcba9876543210L)
                .mac(new byte[] {0x02, 0x00, 0x5e, 0x10, 0x20, 0x30}).enabled(true).extra(7);
    }

    /** A destination whose RAM is all 0xff, so a zero page that is not loaded shows. */
    private static TestVm dirtyDestination() {
        TestVm vm = layout("dst").device(new TestDevice()).build();
        for (GuestRegion r : vm.memory().regions()) {
            vm.memory().fill(r.base(), r.size(), (byte) 0xff);
        }
        return vm;
    }

    @ParameterizedTest(name = "{0}-byte chunks")
    @ValueSource(ints = {4093, 64 << 10})
    void randomRamAndDeviceStateArriveIntact(int chunk) throws Exception {
        long sourceDigest;
        InMemoryMigration.Saved saved;
        List<Long> randomPages;
        try (TestVm src = layout("src").running().device(randomDevice()).build()) {
            randomPages = src.randomizePages(7, 0.5);
            sourceDigest = src.memory().digest();
            saved = InMemoryMigration.saveWithInfo(src.machine());
            assertEquals(sourceDigest, src.memory().digest(), "migrating must not change the source's memory");
        }

        long pages = (4 * MIB + (256 << 10)) / 4096;
        MigrationInfo.Ram ram = saved.info().ram();
        assertEquals(randomPages.size(), ram.normal(), "non-zero pages go as PAGE records, once each");
        assertEquals(pages - randomPages.size(), ram.duplicate(), "zero pages go as ZERO records, once each");
        assertEquals(4 * MIB + (256 << 10), ram.total());

        try (TestVm dst = dirtyDestination()) {
            assertNotEquals(sourceDigest, dst.memory().digest());
            Incoming r = InMemoryMigration.load(dst.machine(), saved.stream(), new MemoryTransports().chunkSize(chunk));
            assertEquals(MigrationStatus.COMPLETED, r.status(), r::toString);
            assertEquals(RunState.RUNNING, dst.machine().runState());
            assertTrue(dst.cpus().running());
            assertEquals(sourceDigest, dst.memory().digest(), "destination RAM differs from the source's");
            assertEquals(sourceDigest, r.memoryDigest(), "digest taken when loading finished");
            assertEquals(randomDevice(), dst.device());
            assertEquals(0, r.connection().unreleasedChunks());
        }
    }

    @Test
    void pagesWrittenWhileMigratingAndDuringDowntimeArrive() throws Exception {
        long sourceDigest;
        byte[] stream;
        List<Long> writtenDuring;
        try (TestVm src = layout("src").running().device(randomDevice()).build()) {
            src.randomizePages(11, 0.25);
            GuestWriter writer = new GuestWriter(src.memory(), 3, 99);
            src.machine().migration().registerLive(writer, MigrationPriority.DEVICE);
            long before = src.memory().digest();
            // downtime-limit 0: switch over only when nothing is pending, so the iteration count
            // (and with it the writer's pages) does not depend on how fast this host copies.
            stream = InMemoryMigration.saveWithInfo(src.machine(),
                    MigrationParameters.defaults().withMaxBandwidth(0).withDowntimeLimitMs(0)).stream();
            sourceDigest = src.memory().digest();
            writtenDuring = writer.written();
            assertEquals(4, writtenDuring.size(), "three iterate steps and the downtime each wrote a page");
            assertNotEquals(before, sourceDigest, "the writer changed guest memory during the migration");
        }
        try (TestVm dst = dirtyDestination()) {
            dst.machine().migration().registerLive(new GuestWriter(dst.memory(), 0, 0), MigrationPriority.DEVICE);
            Incoming r = InMemoryMigration.load(dst.machine(), stream, new MemoryTransports());
            assertEquals(MigrationStatus.COMPLETED, r.status(), r::toString);
            assertEquals(sourceDigest, dst.memory().digest(), "a page written during the migration was lost");
        }
    }

    @Test
    void aZeroPageOverwritesWhateverTheDestinationHad() throws Exception {
        byte[] stream;
        byte[] page = new byte[4096];
        page[4095] = 1;
        try (TestVm src = TestVm.builder("src").ram(64 << 10).running().build()) {
            src.writePage(3, page);
            stream = InMemoryMigration.save(src.machine());
        }
        try (TestVm dst = TestVm.builder("dst").ram(64 << 10).build()) {
            dst.memory().fill(Gpa.of(0), 64 << 10, (byte) 0x5a);
            Incoming r = InMemoryMigration.load(dst.machine(), stream);
            assertEquals(MigrationStatus.COMPLETED, r.status(), r::toString);
            for (int p = 0; p < 16; p++) {
                assertArrayEquals(p == 3 ? page : new byte[4096], dst.readPage(p), "page " + p);
            }
        }
    }
}
