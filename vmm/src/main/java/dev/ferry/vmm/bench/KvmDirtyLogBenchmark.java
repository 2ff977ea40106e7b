package dev.ferry.vmm.bench;

import dev.ferry.core.cpu.guest.GuestLayout;
import dev.ferry.core.cpu.guest.GuestParams;
import dev.ferry.core.cpu.kvm.BuiltInGuest;
import dev.ferry.core.cpu.kvm.KvmCpuEngine;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.ClearableDirtyLog;
import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * KVM's two dirty-log modes on a guest that has touched all of its RAM (the built-in guest, run
 * unpaced over the whole of it): {@code enableLogging} — what turning the log on costs (BITMAP
 * write-protects everything now; MANUAL_PROTECT with INITIALLY_SET nothing); {@code syncRound} —
 * one migration round after the guest wrote 4096 pages: read the log and re-protect what it
 * reported (for MANUAL_PROTECT, the chunk clears migration does while sending).
 * Run: {@code ./ferry bench KvmDirtyLogBenchmark}.
 */
@State(Scope.Thread)
@Fork(value = 1, jvmArgsAppend = {"-Xmx512m"})
@Warmup(iterations = 3)
@Measurement(iterations = 10)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class KvmDirtyLogBenchmark {
    @Param({"1"})
    public int ramGiB;

    @Param({"BITMAP", "MANUAL_PROTECT"})
    public KvmCpuEngine.DirtyLogMode mode;

    private static final int PAGES_PER_EXIT = 64;
    private Machine machine;
    private KvmCpuEngine engine;
    private KvmVcpu vcpu;
    private DirtyLogSource log;
    private DirtyBitmap target;
    private DirtyPages pages;
    private GuestRegion region;

    @Setup(Level.Trial)
    public void touchAllMemory() {
        long ram = (long) ramGiB << 30;
        GuestMemory memory = GuestMemory.ofSize(ram);
        IoBus pio = new IoBus("pio");
        IoBus mmio = new IoBus("mmio");
        engine = new KvmCpuEngine(memory, 1, pio, mmio, mode);
        machine = new Machine("bench", memory, engine, RunState.PRELAUNCH, pio, mmio);
        long wsPages = (ram - GuestLayout.WORKING_SET_MIN_GPA) / 4096;
        BuiltInGuest.boot(machine, engine, GuestParams.of(3, wsPages, PAGES_PER_EXIT));
        vcpu = engine.vcpu(0);
        vcpu.bindThread();
        for (long i = 0; i < 4 * wsPages / PAGES_PER_EXIT; i++) {
            vcpu.run(); // ~98 % of the working set gets written, so mapped in the guest's page tables
        }
        region = memory.regions().get(0);
        target = new DirtyBitmap(region.pages());
        pages = new DirtyPages() {
            @Override
            public DirtyBitmap bitmap(GuestRegion r) {
                return target;
            }

            @Override
            public void mark(Gpa gpa, long length) {
                throw new UnsupportedOperationException();
            }
        };
        log = engine.dirtyLog();
    }

    @Setup(Level.Invocation)
    public void logOff() {
        log.stop();
    }

    @Benchmark
    public void enableLogging() {
        log.start();
    }

    /** Fresh log, then 4096 guest writes, before each syncRound. */
    @State(Scope.Thread)
    public static class Dirtied {
        @Setup(Level.Invocation)
        public void dirty(KvmDirtyLogBenchmark b) {
            b.log.stop();
            b.log.start();
            b.log.sync(b.pages);
            b.clearAll();
            for (int i = 0; i < 4096 / PAGES_PER_EXIT; i++) {
                b.vcpu.run();
            }
        }
    }

    @Benchmark
    public void syncRound(Dirtied d) {
        log.sync(pages);
        clearAll();
    }

    private void clearAll() {
        if (log instanceof ClearableDirtyLog c) {
            for (long first = 0; first < region.pages(); first += 1L << 18) {
                c.clear(region, first, Math.min(1L << 18, region.pages() - first));
            }
        }
    }

    @TearDown(Level.Trial)
    public void stop() {
        log.stop();
        target.close();
        machine.close();
    }
}
