package dev.ferry.migration.ram;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Pages given back to the host (a balloon's) go as ZERO records without being read: even a
 * discarded page the kernel backs again (a read raced the punch) is neither read nor sent as data.
 */
@Timeout(60)
class DiscardedRamTest {
    private static final long MIB = 1 << 20;

    @Test
    void discardedPagesAreSentAsZeroUnread() throws Exception {
        InMemoryMigration.Saved saved;
        try (TestVm src = TestVm.builder("src").ram(4 * MIB).running().build()) {
            src.memory().fill(new Gpa(MIB), MIB, (byte) 0x42);
            assertEquals(16, src.memory().discard(new Gpa(MIB), 16 * 4096));
            // One discarded page backed again behind the VMM's back, holding data.
            NativeMemory.putLong(src.memory().hostAddress(new Gpa(MIB + 4096), 8), 0x4242L);
            saved = InMemoryMigration.saveWithInfo(src.machine());
        }
        assertEquals(256 - 16, saved.info().ram().normal(), "the 16 discarded pages are not sent as data");
        try (TestVm dst = TestVm.builder("dst").ram(4 * MIB).build()) {
            dst.memory().fill(new Gpa(MIB), MIB, (byte) 0x77);
            var r = InMemoryMigration.load(dst.machine(), saved.stream());
            assertEquals(MigrationStatus.COMPLETED, r.status(), r::toString);
            assertEquals(0, dst.memory().readLong(new Gpa(MIB + 4096)), "a discarded page arrives as zero");
            assertEquals(0x4242424242424242L, dst.memory().readLong(new Gpa(MIB + 16 * 4096)));
        }
    }
}
