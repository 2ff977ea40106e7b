package dev.ferry.vmm.bench;

import dev.ferry.core.cpu.CpuEngine;

/**
 * A {@link CpuEngine} with no vCPU threads of its own: the benchmark's thread plays the guest's
 * only vCPU (it runs {@link RingBlkDriver}), so nothing else competes for the two cores with the
 * device's event loop and I/O threads. Pause and resume have nothing to stop or start.
 *
 * <p>Thread-safe.
 */
final class BenchThreadCpus implements CpuEngine {
    @Override
    public String name() {
        return "bench-thread";
    }

    @Override
    public int vcpuCount() {
        return 1;
    }

    @Override
    public void resume() {
    }

    @Override
    public void pause() {
    }

    @Override
    public void setThrottlePercentage(int percentage) {
        if (percentage != 0) {
            throw new UnsupportedOperationException("the benchmark's vCPU cannot be throttled");
        }
    }

    @Override
    public int throttlePercentage() {
        return 0;
    }

    @Override
    public void close() {
    }
}
