package dev.ferry.vmm.bench;

import dev.ferry.core.cpu.guest.GuestParams;
import dev.ferry.core.cpu.kvm.BuiltInGuest;
import dev.ferry.core.cpu.kvm.KvmCpuEngine;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
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
 * The KVM engine's costs on this host: one dirty-log sync (KVM_GET_DIRTY_LOG into the migration
 * bitmap) of an idle guest of {@code ramGiB}, and the round trip of one port-I/O exit (the
 * built-in guest writes one page and OUTs a heartbeat per KVM_RUN) — exits per second is
 * its inverse. Run: {@code ./ferry bench KvmBenchmark}.
 */
@State(Scope.Thread)
@Fork(value = 1, jvmArgsAppend = {"-Xmx512m"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class KvmBenchmark {
    @Param({"1", "4"})
    public int ramGiB;

    private GuestMemory memory;
    private KvmCpuEngine engine;
    private Machine machine;
    private KvmVcpu vcpu;
    private DirtyLogSource log;
    private DirtyBitmap[] target;
    private DirtyPages pages;

    @Setup(Level.Trial)
    public void start() {
        memory = GuestMemory.ofSize((long) ramGiB << 30);
        IoBus pio = new IoBus("pio");
        IoBus mmio = new IoBus("mmio");
        engine = new KvmCpuEngine(memory, 1, pio, mmio);
        machine = new Machine("bench", memory, engine, RunState.PRELAUNCH, pio, mmio);
        BuiltInGuest.boot(machine, engine, GuestParams.of(1, 16384, 1));
        vcpu = engine.vcpu(0);
        vcpu.bindThread();
        log = engine.dirtyLog();
        log.start();
        target = new DirtyBitmap[memory.regions().size()];
        for (GuestRegion r : memory.regions()) {
            target[r.index()] = new DirtyBitmap(r.pages());
        }
        pages = new DirtyPages() {
            @Override
            public DirtyBitmap bitmap(GuestRegion region) {
                return target[region.index()];
            }

            @Override
            public void mark(Gpa gpa, long length) {
                throw new UnsupportedOperationException();
            }
        };
    }

    /** One sync of the whole guest's KVM dirty log (the guest is idle between syncs). */
    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public void dirtyLogSync() {
        log.sync(pages);
    }

    /** One KVM_RUN: the guest writes a page and exits on its heartbeat OUT. */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public int ioExit() {
        return vcpu.run();
    }

    @TearDown(Level.Trial)
    public void stop() {
        log.stop();
        for (DirtyBitmap b : target) {
            b.close();
        }
        machine.close();
    }
}
