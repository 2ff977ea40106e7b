package dev.ferry.migration.hostile;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.InMemoryMigration.Incoming;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.StreamBytes;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The destination every hostile-stream test feeds, and the verdict each test asserts. The
 * destination is a fresh 16 KiB VM ("pc.ram") with a reset {@link TestDevice}, waiting in
 * inmigrate; the stream reaches the real {@code DestinationMigration} through a
 * {@link MemoryTransports} file.
 */
final class HostileStreams {
    static final int RAM_BYTES = 16 << 10;
    /** Heap the incoming thread may allocate while it reads one small stream and fails. */
    static final long ALLOCATION_BOUND = 8L << 20;

    static {
        // Thousands of expected failures would each log a warning; keep the build log readable.
        // (Effective only if no earlier test in this JVM created the engine's logger.)
        System.setProperty("org.slf4j.simpleLogger.log.dev.ferry.migration.DestinationMigration", "error");
    }

    private HostileStreams() {
    }

    static TestVm destination() {
        return TestVm.builder("dst").ram(RAM_BYTES).runState(RunState.PRELAUNCH).device(new TestDevice()).build();
    }

    /** Header and configuration, as every Ferry stream starts. */
    static StreamBytes prologue() {
        return new StreamBytes().header().configuration("ferry");
    }

    /** Prologue plus the RAM setup section (id 1): MEM_SIZE for "pc.ram", EOS, footer. */
    static StreamBytes ramSetup() {
        return prologue().start(1, "ram", 0, 4).memSize(RAM_BYTES).block("pc.ram", RAM_BYTES).ramEos().footer(1);
    }

    static byte[] pattern() {
        byte[] p = new byte[StreamBytes.PAGE];
        for (int i = 0; i < p.length; i++) {
            p[i] = (byte) (i * 7 + 3);
        }
        return p;
    }

    /** After {@link #ramSetup()}: a PART with every page, an END, the device, EOF and a vmdesc. */
    static StreamBytes completeAfterSetup(StreamBytes s) {
        return s.part(1).zeroPage(0, "pc.ram").pageContinue(0x1000, pattern()).zeroPageContinue(0x2000)
                .zeroPageContinue(0x3000).ramEos().footer(1)
                .end(1).ramEos().footer(1)
                .full(0, "test-dev", 0, 1).testDeviceState(TestDevice.sample()).footer(0)
                .eof().vmdesc("{\"page_size\": 4096, \"devices\": []}");
    }

    /** A complete, valid hand-written stream: each hostile test changes one thing in it. */
    static byte[] valid() {
        return completeAfterSetup(ramSetup()).toByteArray();
    }

    /** Loads {@code stream} (file-like connection, 7-byte chunks) into a fresh destination. */
    static Incoming load(byte[] stream) throws Exception {
        return load(stream, new MemoryTransports().chunkSize(7));
    }

    /** Loads {@code stream} through a socket-like connection (it has a return path), 7-byte chunks. */
    static Incoming loadSocketLike(byte[] stream) throws Exception {
        return load(stream, new MemoryTransports().chunkSize(7).incomingReturnPath(true));
    }

    static Incoming load(byte[] stream, MemoryTransports t) throws Exception {
        try (TestVm vm = destination()) {
            Incoming r = InMemoryMigration.load(vm.machine(), stream, t);
            if (r.status() != MigrationStatus.COMPLETED) {
                assertFalse(vm.cpus().running(), "a destination that failed to load must not run its vCPUs");
                assertEquals(0, vm.cpus().resumes(), "a destination that failed to load must not have started");
            }
            return r;
        }
    }

    /**
     * The incoming migration failed, said why ({@code reason} is part of error-desc), left the VM
     * in inmigrate, released every chunk it read and allocated little heap doing so.
     */
    static void assertRefused(Incoming r, String reason) {
        assertEquals(MigrationStatus.FAILED, r.status(), () -> "expected a refusal naming '" + reason + "', got " + r);
        assertTrue(r.errorDesc() != null && r.errorDesc().contains(reason),
                () -> "error-desc should name the problem ('" + reason + "'): " + r.errorDesc());
        assertNotEquals(RunState.RUNNING, r.runState());
        assertEquals(RunState.INMIGRATE, r.runState(), "a failed incoming migration leaves the VM in inmigrate");
        assertEquals(0, r.connection().unreleasedChunks(), "chunks the reader did not release");
        assertTrue(r.connection().isClosed(), "the destination closes its connection when it fails");
        long allocated = r.connection().readerAllocatedBytes();
        if (allocated >= 0) {
            assertTrue(allocated < ALLOCATION_BOUND, () -> "the incoming thread allocated " + allocated
                    + " bytes of heap for a " + r.connection().bytesServed() + "-byte stream");
        }
    }
}
