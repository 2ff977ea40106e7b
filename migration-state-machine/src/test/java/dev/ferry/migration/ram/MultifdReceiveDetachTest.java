package dev.ferry.migration.ram;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.stream.BandwidthLimiter;
import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.transport.MigrationConnection;
import dev.ferry.migration.transport.MigrationListener;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The receiving end of a multifd channel on an epoll transport takes its socket out of Netty and
 * reads packets straight into place, and what it loads is what was sent: a receive path that
 * fell back to copying through the transport fails it (its send-side twin is in
 * {@link MultifdSyncCloseTest}).
 */
@Timeout(60)
class MultifdReceiveDetachTest {
    @Test
    void theReceivingChannelLeavesNettyAndLoadsWhatWasSent() throws Exception {
        long ram = 16L << 20;
        try (GuestMemory src = GuestMemory.ofSize(ram); GuestMemory dst = GuestMemory.ofSize(ram);
             NettyMigrationTransports transports = new NettyMigrationTransports();
             MigrationListener listener = transports.listen("tcp:127.0.0.1:0")) {
            GuestRegion region = src.regions().get(0);
            Random random = new Random(5);
            for (long off = 0; off < ram; off += 8) {
                NativeMemory.putLong(region.hostAddress(off), random.nextLong() | 1);
            }
            MultifdSend send = MultifdSend.open(transports, listener.boundUri(), 1,
                    new BandwidthLimiter(0, System::nanoTime), () -> null);
            RamReceiver receiver = new RamReceiver(dst);
            AtomicReference<String> failed = new AtomicReference<>();
            try {
                MigrationConnection c = listener.accept(Duration.ofSeconds(10));
                ChannelLoadStream in = new ChannelLoadStream(c);
                assertTrue(MultifdReceive.isChannelMagic(in.getBe32()), "a multifd opening");
                receiver.useMultifd(List.of(MultifdReceive.readOpening(c, in)), failed::set);
                byte[] id = region.name().getBytes(java.nio.charset.StandardCharsets.UTF_8);
                for (long p = 0; p < ram / RamFlags.PAGE_SIZE; p++) {
                    send.queue(region, id, p);
                }
                send.sync();
                receiver.multifd().sync();
                if (transports.usesEpoll()) {
                    assertEquals(1, receiver.multifd().detachedChannels(),
                            "the channel's socket left Netty for direct reads");
                }
                assertNull(failed.get());
                assertEquals(src.digest(), dst.digest(), "the pages arrived in place");
            } finally {
                send.close();
                receiver.close();
            }
        }
    }
}
