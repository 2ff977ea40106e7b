package dev.ferry.migration.hostile;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.InMemoryMigration.Incoming;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A stream the real source wrote for a tiny VM, cut at every possible length. Every cut must end
 * the incoming migration as failed — never hang, never complete with half a state — and say how
 * far the stream got; the whole stream must complete.
 *
 * <p>Chunk sizes are primes, so the values the cuts split also straddle chunk borders at
 * changing positions ({@link #theWholeStreamCompletesWhateverTheChunking} covers 1-byte chunks).
 *
 * <p>On a socket (return path) the destination reads the vmdesc after EOF, so every cut fails. A
 * file may end right after EOF: like QEMU, which only reports a missing vmdesc and carries on, the
 * destination does not need the vmdesc of a file, so cuts after EOF complete there.
 */
@Timeout(120)
class TruncatedStreamTest {
    private static byte[] stream;
    /** Offset of the EOF byte (the vmdesc follows it). */
    private static int eofOffset;

    @BeforeAll
    static void saveATinyVm() throws Exception {
        try (TestVm vm = TestVm.builder("src").ram(HostileStreams.RAM_BYTES).running().device(TestDevice.sample())
                .build()) {
            vm.writePage(1, HostileStreams.pattern());
            stream = InMemoryMigration.save(vm.machine());
        }
        eofOffset = findEof(stream);
    }

    /** EOF is the 0x00 followed by 0x06 and a be32 length that reaches exactly the end. */
    private static int findEof(byte[] s) {
        for (int i = s.length - 6; i >= 0; i--) {
            if (s[i] == 0 && s[i + 1] == 0x06 && ByteBuffer.wrap(s, i + 2, 4).getInt() == s.length - i - 6) {
                return i;
            }
        }
        throw new AssertionError("no EOF + vmdesc at the end of the stream");
    }

    @Test
    void everyCutOfASocketStreamFailsAndSaysWhereItEnded() throws Exception {
        MemoryTransports t = new MemoryTransports().chunkSize(61).incomingReturnPath(true);
        List<String> wrong = new ArrayList<>();
        try (TestVm vm = HostileStreams.destination()) {
            for (int cut = 0; cut < stream.length; cut++) {
                Incoming r = InMemoryMigration.load(vm.machine(), Arrays.copyOf(stream, cut), t);
                String expected = "migration stream ended after " + cut + " bytes without its end";
                if (r.status() != MigrationStatus.FAILED || r.errorDesc() == null || !r.errorDesc().contains(expected)
                        || r.runState() != RunState.INMIGRATE || r.connection().unreleasedChunks() != 0) {
                    wrong.add("cut at " + cut + ": " + r + ", " + r.connection().unreleasedChunks() + " chunks unreleased");
                }
            }
            assertEquals(0, vm.cpus().resumes(), "a destination that never loaded a whole stream started its vCPUs");
        }
        assertTrue(wrong.isEmpty(), () -> wrong.size() + " of " + stream.length + " cuts went wrong, e.g.\n"
                + String.join("\n", wrong.subList(0, Math.min(10, wrong.size()))));
    }

    @Test
    void everyCutOfAFileUpToEofFailsAndLaterCutsComplete() throws Exception {
        MemoryTransports t = new MemoryTransports().chunkSize(509);
        List<String> wrong = new ArrayList<>();
        try (TestVm failing = HostileStreams.destination(); TestVm completing = HostileStreams.destination()) {
            for (int cut = 0; cut < stream.length; cut++) {
                boolean hasEof = cut > eofOffset;
                Incoming r = InMemoryMigration.load((hasEof ? completing : failing).machine(),
                        Arrays.copyOf(stream, cut), t);
                boolean ok = hasEof
                        ? r.status() == MigrationStatus.COMPLETED && r.runState() == RunState.RUNNING
                        : r.status() == MigrationStatus.FAILED && r.runState() == RunState.INMIGRATE
                                && r.errorDesc().contains("migration stream ended after " + cut + " bytes without its end");
                if (!ok || r.connection().unreleasedChunks() != 0) {
                    wrong.add("cut at " + cut + (hasEof ? " (after EOF)" : "") + ": " + r);
                }
            }
            assertEquals(0, failing.cpus().resumes(), "a destination that never loaded a whole stream started");
            assertEquals(TestDevice.sample(), completing.device());
        }
        assertTrue(wrong.isEmpty(), () -> wrong.size() + " of " + stream.length + " cuts went wrong, e.g.\n"
                + String.join("\n", wrong.subList(0, Math.min(10, wrong.size()))));
    }

    @ParameterizedTest(name = "{0}-byte chunks")
    @ValueSource(ints = {1, 2, 3, 7, 4095, 4096, 4097, 64 << 10})
    void theWholeStreamCompletesWhateverTheChunking(int chunk) throws Exception {
        for (boolean socket : new boolean[] {false, true}) {
            try (TestVm vm = HostileStreams.destination()) {
                MemoryTransports t = new MemoryTransports().chunkSize(chunk).incomingReturnPath(socket);
                Incoming r = InMemoryMigration.load(vm.machine(), stream, t);
                assertEquals(MigrationStatus.COMPLETED, r.status(), r::toString);
                assertEquals(RunState.RUNNING, r.runState());
                if (socket) {
                    assertEquals(stream.length, r.connection().bytesServed(), "the destination read the whole stream");
                } else {
                    assertTrue(r.connection().bytesServed() > eofOffset, "the destination read up to EOF");
                }
                assertEquals(0, r.connection().unreleasedChunks());
                assertArrayEquals(HostileStreams.pattern(), vm.readPage(1));
                assertArrayEquals(new byte[4096], vm.readPage(0));
                assertEquals(TestDevice.sample(), vm.device());
            }
        }
    }
}
