package dev.ferry.vfio.migration;

import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;

import java.util.SplittableRandom;

/**
 * An emulated VF that writes into guest memory by DMA, as a NIC writes received packets: on
 * demand ({@link #dmaWrite}) and, when {@code background} is set, from its own thread every
 * millisecond while its data plane runs (a random page of {@code [0, dmaBytes)}, a counter). Its
 * writes go through the base class's DMA path, so they reach its DMA log and stop when it stops.
 */
final class DmaWritingVf extends EmulatedVfioDevice {
    private final Thread writer;
    private final long dmaBytes;
    private volatile boolean closing;

    DmaWritingVf(String name, EmulatedVfSpec spec, DmaSpace dma, long dmaBytes, boolean background) {
        super(name, spec, dma);
        this.dmaBytes = dmaBytes;
        if (background) {
            writer = new Thread(this::writeLoop, "vfio-" + name + "-dma");
            writer.setDaemon(true);
            writer.start();
        } else {
            writer = null;
        }
    }

    /** One 8-byte DMA write at {@code iova}; throws when the device is stopped (a device bug). */
    void dmaWrite(long iova, long value) {
        synchronized (lock) {
            dmaPutLong(iova, value);
        }
    }

    private void writeLoop() {
        SplittableRandom rnd = new SplittableRandom(7);
        long counter = 1;
        while (!closing) {
            synchronized (lock) {
                if (dataPlaneRunning()) {
                    long page = rnd.nextLong(dmaBytes / 4096);
                    dmaPutLong(page * 4096 + 8 * rnd.nextInt(512), counter++);
                }
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    @Override
    protected void onClose() {
        closing = true;
        if (writer != null) {
            writer.interrupt();
            try {
                writer.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
