package dev.ferry.vfio.check;

import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;

/**
 * An emulated VF whose workload also DMAs: each {@link #advance} step writes a fresh value into
 * one page of its IOVA space, through the base device's {@code dmaPutLong} (which logs the page
 * when DMA logging runs). The base VF never DMAs by itself, so without this the check's DMA-log
 * rule has nothing to observe.
 */
final class DmaWritingVf extends EmulatedVfioDevice {
    private long writes;

    DmaWritingVf(String name, EmulatedVfSpec spec, DmaSpace dma) {
        super(name, spec, dma);
    }

    @Override
    public void advance(int steps) {
        super.advance(steps);
        synchronized (lock) {
            IovaRange r = dma.mappedRanges().get(0);
            long pages = r.length() / 4096;
            for (int i = 0; i < steps; i++) {
                writes++;
                long page = (writes * 7) % pages;
                dmaPutLong(r.iova() + page * 4096 + 64, writes * 0x9E3779B97F4A7C15L);
            }
        }
    }

    /** Distinct pages {@code steps} workload steps write, starting from a fresh device. */
    static long pagesWritten(int steps, long pages) {
        java.util.Set<Long> seen = new java.util.HashSet<>();
        for (long w = 1; w <= steps; w++) {
            seen.add((w * 7) % pages);
        }
        return seen.size();
    }
}
