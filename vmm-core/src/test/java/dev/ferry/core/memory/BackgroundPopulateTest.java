package dev.ferry.core.memory;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Populating guest RAM in the background (memory "prealloc": "background"): every page ends up
 * allocated, contents written before or during it are kept, a discard stops it so a punched page
 * stays a hole, and close waits for it.
 */
@Timeout(60)
class BackgroundPopulateTest {
    private static final long MIB = 1 << 20;

    private static void awaitPopulated(GuestMemory mem, long bytes) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (mem.populatedBytes() < bytes) {
            assertTrue(System.nanoTime() < deadline, "populated " + mem.populatedBytes() + " of " + bytes);
            Thread.sleep(5);
        }
    }

    @Test
    void everyPageGetsAllocatedAndContentsAreKept() throws Exception {
        try (GuestMemory mem = GuestMemory.builder().region("pc.ram", 0, 128 * MIB).build()) {
            mem.fill(Gpa.of(64 * MIB), 4096, (byte) 0x5a);
            assertTrue(mem.allocatedBytes() < 8 * MIB, "sparse before: " + mem.allocatedBytes());
            mem.populateInBackground();
            mem.populateInBackground(); // idempotent
            mem.fill(Gpa.of(100 * MIB), 4096, (byte) 0x33); // a receiver writing meanwhile
            awaitPopulated(mem, 128 * MIB);
            assertEquals(128 * MIB, mem.allocatedBytes(), "every page is allocated");
            assertEquals(0x5a5a5a5a5a5a5a5aL, mem.readLong(Gpa.of(64 * MIB)), "data written before is kept");
            assertEquals(0x3333333333333333L, mem.readLong(Gpa.of(100 * MIB)), "data written during it is kept");
            assertEquals(0, mem.readLong(Gpa.of(8 * MIB)), "the rest reads zero");
        }
    }

    @Test
    void aDiscardStopsItSoThePunchedPagesStayHoles() throws Exception {
        try (GuestMemory mem = GuestMemory.builder().region("pc.ram", 0, 256 * MIB).build()) {
            mem.populateInBackground();
            mem.discard(Gpa.of(200 * MIB), 16 * 4096);
            long populated = mem.populatedBytes();
            Thread.sleep(100);
            assertEquals(populated, mem.populatedBytes(), "the populator stopped at the discard");
            for (long p = 0; p < 16; p++) {
                assertTrue(mem.isDiscarded(Gpa.of(200 * MIB + p * 4096)));
            }
            long allocated = mem.allocatedBytes();
            assertTrue(allocated <= 256 * MIB - 16 * 4096, "the punched pages are not allocated: " + allocated);
        }
    }

    @Test
    void closeWaitsForThePopulator() {
        GuestMemory mem = GuestMemory.builder().region("pc.ram", 0, 512 * MIB).build();
        mem.populateInBackground();
        mem.close(); // must not unmap under a running MADV_POPULATE_WRITE; the JVM would crash if it did
        assertTrue(mem.populatedBytes() <= 512 * MIB);
    }
}
