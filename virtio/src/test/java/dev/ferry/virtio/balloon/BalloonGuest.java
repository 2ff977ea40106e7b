package dev.ferry.virtio.balloon;

import dev.ferry.core.device.DeviceOptions;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A virtio-balloon on an {@link MmioGuest} machine (16 MiB, no vCPUs) with the test as its driver:
 * queues brought up in Linux's numbering for the features taken, PFN buffers at small buffers, and
 * a host clock the test sets. Balloon pages for tests live at {@link #POOL} (12–16 MiB), clear of
 * the rings and buffers MmioGuest lays out.
 */
final class BalloonGuest implements AutoCloseable {
    static final long POOL = 12L << 20;
    static final int QSIZE = 16;
    final MmioGuest g;
    final VirtioBalloon balloon;
    final AtomicLong clock = new AtomicLong(1_700_000_000L);
    final List<DriverQueue> queues = new ArrayList<>();

    BalloonGuest(Map<String, Object> options) throws Exception {
        BalloonOptions o = VirtioBalloonKind.parse(new DeviceOptions("devices[0]", options));
        g = new MmioGuest("balloon", false, c -> VirtioMmioDevice.attach(c, VirtioBalloonKind.NAME,
                new VirtioBalloon(c.id(), o, c.machine().memory(), c.machine().migration(), clock::get)));
        balloon = (VirtioBalloon) g.transport.model();
        g.machine.vmStart();
    }

    /** Negotiates {@code deviceFeatures} (plus VERSION_1) and brings up {@code n} queues, then DRIVER_OK. */
    void bringUp(long deviceFeatures, int n) {
        if (!g.negotiate(deviceFeatures | Virtio.bit(Virtio.F_VERSION_1))) {
            throw new AssertionError("FEATURES_OK refused");
        }
        for (int q = 0; q < n; q++) {
            queues.add(g.setupQueue(q, QSIZE));
        }
        g.driverOk();
    }

    DriverQueue q(int i) {
        return queues.get(i);
    }

    /** Writes PFNs (le32) at small buffer {@code k} onwards and sends them on queue {@code q}; waits for the used element. */
    DriverQueue.Used sendPfns(int q, int k, long... pfns) throws InterruptedException {
        long buf = MmioGuest.small(k);
        for (int i = 0; i < pfns.length; i++) {
            g.mem.writeU32(buf + 4L * i, (int) pfns[i]);
        }
        q(q).add(List.of(MmioGuest.buf(buf, 4L * pfns.length)), List.of(), false);
        g.kick(q);
        return g.awaitUsed(q(q));
    }

    static long[] pfnRange(long gpa, int pages) {
        long[] p = new long[pages];
        for (int i = 0; i < pages; i++) {
            p[i] = (gpa >>> 12) + i;
        }
        return p;
    }

    long config32(int off) {
        return g.read(0x100 + off) & 0xffffffffL;
    }

    @Override
    public void close() {
        g.close();
    }
}
