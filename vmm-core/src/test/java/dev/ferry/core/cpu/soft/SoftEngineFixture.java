package dev.ferry.core.cpu.soft;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.NativeMemory;

import java.util.function.LongSupplier;

/** Waiting and counting helpers for the threaded soft-engine tests. None asserts on time. */
final class SoftEngineFixture {
    static final long MIB = 1L << 20;

    private SoftEngineFixture() {
    }

    /** Polls until the vCPUs have written at least {@code pages} in total; the test's @Timeout bounds it. */
    static void awaitPagesWritten(SoftCpuEngine engine, long pages) throws InterruptedException {
        while (engine.pagesWritten() < pages) {
            if (engine.failure().isPresent()) {
                throw new AssertionError("vCPU died", engine.failure().get());
            }
            Thread.sleep(1);
        }
    }

    /** Polls until {@code condition} holds; the test's @Timeout bounds it. */
    static void await(java.util.function.BooleanSupplier condition) throws InterruptedException {
        while (!condition.getAsBoolean()) {
            Thread.sleep(1);
        }
    }

    static long vcpuThreads() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith(SoftCpuEngine.THREAD_PREFIX) && t.isAlive()).count();
    }

    /** A byte-for-byte copy of {@code src}'s regions (what a completed RAM migration leaves behind). */
    static GuestMemory copyOf(GuestMemory src) {
        GuestMemory.Builder b = GuestMemory.builder();
        for (GuestRegion r : src.regions()) {
            b.region(r.name(), r.gpaBase(), r.size());
        }
        GuestMemory dst = b.build();
        for (GuestRegion r : src.regions()) {
            NativeMemory.copy(r.hostAddress(0), dst.region(r.name()).hostAddress(0), r.size());
        }
        return dst;
    }

    /** A clock that works {@code calls} times and then throws, to kill a vCPU thread on purpose. */
    static LongSupplier clockFailingAfter(long calls) {
        java.util.concurrent.atomic.AtomicLong n = new java.util.concurrent.atomic.AtomicLong();
        return () -> {
            if (n.incrementAndGet() > calls) {
                throw new IllegalStateException("test clock broke");
            }
            return System.nanoTime();
        };
    }
}
