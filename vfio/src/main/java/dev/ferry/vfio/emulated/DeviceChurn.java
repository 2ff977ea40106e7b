package dev.ferry.vfio.emulated;

/**
 * The churn of an {@link EmulatedVfioDevice}: the device changing its internal state memory while
 * it runs, at {@link EmulatedVfSpec#dirtyRate()} bytes per second as pre-copy sees it. Its
 * generator (a step counter and xorshift state) is part of the device's control state, so a
 * loaded device churns on exactly as the saved one would have.
 *
 * <h2>Threads</h2>
 * Its own daemon thread (when the rate is above zero), or the caller of
 * {@link EmulatedVfioDevice#advance}; every step under the device lock, and only while the data
 * plane runs.
 */
final class DeviceChurn {
    private final EmulatedVfioDevice dev;
    /** Steps taken; with {@link #rng}, the generator's state. */
    long counter;
    long rng;
    /** The churn thread, when the device has a rate and state memory; started with the device. */
    private final Thread thread;

    DeviceChurn(EmulatedVfioDevice dev) {
        this.dev = dev;
        reset();
        if (dev.spec.dirtyRate() > 0 && dev.memory.bytes() > 0) {
            thread = new Thread(this::loop, "vfio-" + dev.name + "-churn");
            thread.setDaemon(true);
        } else {
            thread = null;
        }
    }

    /** Back to the generator's power-on state. Lock held (or construction). */
    void reset() {
        counter = 0;
        rng = dev.spec.seed() * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
    }

    /** Starts the churn thread, if there is one; the device's state is ready. */
    void start() {
        if (thread != null) {
            thread.start();
        }
    }

    /** Stops the churn thread; the device is closed. Without the lock. */
    void stop() {
        if (thread != null) {
            thread.interrupt();
            try {
                thread.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Changes the state at {@link EmulatedVfSpec#dirtyRate()} bytes per second as pre-copy sees
     * it: each step writes 64 bytes somewhere in one 64 KiB chunk, which makes the whole chunk
     * dirty, so the loop takes {@code rate / CHUNK} steps a second (owed across 10 ms ticks).
     * A device whose changes are spread thinner would dirty everything at any rate, and pre-copy
     * could never get ahead of it.
     */
    private void loop() {
        long owed = 0;
        long perTick = dev.spec.dirtyRate() / 100;
        try {
            while (true) {
                synchronized (dev.lock) {
                    while (!dev.closed && !dev.dataPlaneRunning) {
                        dev.lock.wait();
                    }
                    if (dev.closed) {
                        return;
                    }
                    owed += perTick;
                    for (; owed >= EmulatedVfioDevice.CHUNK; owed -= EmulatedVfioDevice.CHUNK) {
                        step();
                    }
                }
                Thread.sleep(10);
            }
        } catch (InterruptedException e) {
            // closing
        }
    }

    /** Runs {@code steps} steps now (lock held, running); a device without state memory only counts them. */
    void advance(int steps) {
        if (dev.memory.bytes() == 0) {
            counter += steps;
            return;
        }
        for (int i = 0; i < steps; i++) {
            step();
        }
    }

    private void step() {
        rng ^= rng << 13;
        rng ^= rng >>> 7;
        rng ^= rng << 17;
        StateMemory memory = dev.memory;
        long offset = Long.remainderUnsigned(rng, memory.bytes()) & ~63L;
        counter++;
        for (int w = 0; w < 8 && offset + w * 8L + 8 <= memory.bytes(); w++) {
            dev.writeState(offset + w * 8L, rng ^ (counter * 0x9E3779B97F4A7C15L) ^ w);
        }
    }
}
