package dev.ferry.migration.ram;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.testing.MemoryConnection;

import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fuzz target: a destination's multifd channel. The bytes are what a hostile source sends on one
 * channel after its opening; the incoming thread's part is played here (a MULTIFD_FLUSH after
 * each synchronisation until the channel ends or fails, then EOF's check). Whatever the bytes,
 * every refusal names the channel and is printable, nothing is written outside the 64 KiB of RAM
 * (the receiver checks; guest memory is bounds-checked), the channel thread ends, and the
 * connection is closed with every chunk released — never another exception, a hang or an OOM.
 */
class MultifdChannelFuzzTest {
    static final int RAM_BYTES = 64 << 10;

    @FuzzTest(maxDuration = "30s")
    void channelPacketsAreAppliedOrRefused(byte[] bytes) throws Exception {
        try (GuestMemory memory = GuestMemory.ofSize(RAM_BYTES)) {
            RamReceiver receiver = new RamReceiver(memory);
            MemoryConnection c = new MemoryConnection("fuzz", bytes, 509, false);
            AtomicReference<String> heard = new AtomicReference<>();
            MultifdReceive.Incoming in = new MultifdReceive.Incoming(0, new byte[16], c, new ChannelLoadStream(c));
            try {
                receiver.useMultifd(List.of(in), heard::set);
                MultifdReceive m = receiver.multifd();
                // Each MULTIFD_FLUSH waits for one SYNC packet; there are at most bytes/320 of them.
                for (int i = 0; i <= bytes.length / Multifd.HEADER_BYTES; i++) {
                    try {
                        m.sync();
                    } catch (MigrationException e) {
                        assertRefusal(e.getMessage());
                        break;
                    }
                }
                try {
                    m.finish();
                } catch (MigrationException e) {
                    assertRefusal(e.getMessage());
                }
            } finally {
                receiver.close();
            }
            if (heard.get() != null) {
                assertRefusal(heard.get());
            }
            assertTrue(c.isClosed(), "the channel's connection is closed");
            assertEquals(0, c.unreleasedChunks(), "chunks the channel did not release");
        }
    }

    private static void assertRefusal(String message) {
        assertTrue(message.startsWith("multifd channel 0"), "a refusal names the channel: " + message);
        for (char ch : message.toCharArray()) {
            assertTrue(ch >= 0x20 && ch < 0x7f, "printable ASCII only: " + message);
        }
    }
}
