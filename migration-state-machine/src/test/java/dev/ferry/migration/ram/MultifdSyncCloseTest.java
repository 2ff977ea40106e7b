package dev.ferry.migration.ram;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.stream.BandwidthLimiter;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A main connection lost while the migration thread waits at a sync, with a channel thread
 * blocked on a link that takes nothing more: the sync fails at once and the channel thread ends.
 * (Closing the channels there used to join their threads under the sync's lock, which a channel
 * thread needs to record its error and end: each join ran out its 10 s bound.)
 */
@Timeout(60)
class MultifdSyncCloseTest {
    private static final int PACKET_PAGES = Multifd.PAGES_PER_PACKET;
    private static final long PACKET_BYTES = Multifd.HEADER_BYTES + 8L * PACKET_PAGES + (long) PACKET_PAGES * RamFlags.PAGE_SIZE;

    @Test
    void aLostMainConnectionEndsASyncWhoseChannelIsBlocked() throws Exception {
        long ram = 64L << 20;
        try (GuestMemory memory = GuestMemory.ofSize(ram);
             NettyMigrationTransports transports = new NettyMigrationTransports();
             ServerSocket peer = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            GuestRegion region = memory.regions().get(0);
            Random random = new Random(3);
            for (long off = 0; off < ram; off += 8) {
                NativeMemory.putLong(region.hostAddress(off), random.nextLong() | 1);
            }
            AtomicReference<String> mainLost = new AtomicReference<>();
            MultifdSend send = MultifdSend.open(transports, "tcp:127.0.0.1:" + peer.getLocalPort(), 1,
                    new BandwidthLimiter(0, System::nanoTime), mainLost::get);
            try (Socket never = peer.accept()) { // connected, and never read: the link fills and stalls
                if (transports.usesEpoll()) {
                    assertEquals(1, send.detachedChannels(), "the channel's socket left Netty for direct sends");
                }
                byte[] id = region.name().getBytes(StandardCharsets.UTF_8);
                long pages = ram / RamFlags.PAGE_SIZE;
                boolean blocked = false;
                for (long p = 0; p + PACKET_PAGES <= pages && !blocked; p += PACKET_PAGES) {
                    for (long i = p; i < p + PACKET_PAGES; i++) {
                        send.queue(region, id, i); // hands the previous packet off
                    }
                    long handedOff = p / PACKET_PAGES;
                    Thread.sleep(100);
                    // A channel that wrote every packet handed off is not blocked; one behind is.
                    blocked = handedOff > 0 && send.bytesSent() < Multifd.INIT_BYTES + handedOff * PACKET_BYTES;
                }
                assertTrue(blocked, "the channel blocked on a link nobody reads");
                Thread timer = new Thread(() -> {
                    try {
                        Thread.sleep(500); // the sync is waiting by now, its SYNC packet queued
                        mainLost.set("the main connection is gone");
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
                timer.start();
                long t0 = System.nanoTime();
                IOException e = assertThrows(IOException.class, send::sync);
                long ms = (System.nanoTime() - t0) / 1_000_000;
                assertTrue(e.getMessage().contains("the main connection is gone"), e.getMessage());
                // Not a benchmark: the old code took a channel join's 10 s bound here.
                assertTrue(ms < 5_000, "the sync failed after " + ms + " ms");
                timer.join();
            } finally {
                send.close();
            }
            assertFalse(anyAlive("ferry-multifd-send-"), "no channel thread left");
        }
    }

    private static boolean anyAlive(String prefix) {
        return Thread.getAllStackTraces().keySet().stream().anyMatch(t -> t.isAlive() && t.getName().startsWith(prefix));
    }
}
