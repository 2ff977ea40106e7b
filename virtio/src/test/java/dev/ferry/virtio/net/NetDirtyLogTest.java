package dev.ferry.virtio.net;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.Gpa;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A frame the device writes into guest RAM is in the VMM's write log — every page of it, the
 * second and third RX buffers of a merged frame included — and so is the used ring: a migration
 * re-sends what the device wrote.
 */
@Timeout(60)
class NetDirtyLogTest {
    @Test
    void rxWritesAreLogged() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(NetFixture.BASE | dev.ferry.virtio.Virtio.bit(VirtioNet.F_MRG_RXBUF));
            for (int k = 0; k < 3; k++) {
                n.postRx(k, 512);
            }
            GuestMemory memory = n.g.machine.memory();
            n.g.settle();
            memory.writeLog().start();
            try {
                n.fromWire(NetFixture.frame(NetFixture.MAC, new byte[] {2, 0, 0, 0, 0, 1}, 1200, 0));
                for (int k = 0; k < 3; k++) {
                    n.g.awaitUsed(n.rx);
                }
                GuestRegion ram = memory.regions().get(0);
                try (DirtyBitmap log = new DirtyBitmap(ram.pages())) {
                    memory.writeLog().sync(new DirtyPages() {
                        @Override
                        public DirtyBitmap bitmap(GuestRegion region) {
                            return log;
                        }

                        @Override
                        public void mark(Gpa gpa, long length) {
                            throw new UnsupportedOperationException();
                        }
                    });
                    for (int k = 0; k < 3; k++) {
                        assertTrue(log.get(MmioGuest.data(k) / 4096), "RX buffer " + k + "'s page is logged");
                    }
                    DriverQueue rx = n.rx;
                    assertTrue(log.get(rx.config().usedGpa() / 4096), "the used ring's page is logged");
                }
            } finally {
                memory.writeLog().stop();
            }
        }
    }
}
