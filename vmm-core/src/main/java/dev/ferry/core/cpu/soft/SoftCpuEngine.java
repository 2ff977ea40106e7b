package dev.ferry.core.cpu.soft;

import dev.ferry.core.cpu.VcpuGate;
import dev.ferry.core.cpu.CpuEngine;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.MigrationRegistry;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;

/**
 * The software guest: {@link SoftWorkload#vcpus()} platform threads named {@code ferry-vcpu-<i>}
 * (daemons) that dirty the workload's working set at its rate, each in its own partition, with
 * content anyone can verify from the seed (layout in {@link SoftPage}). For hosts without
 * /dev/kvm and for reproducible migration benchmarks.
 *
 * <p>Run-state protocol ({@link CpuEngine}): created paused; the first {@link #resume()} starts
 * the threads, later ones wake them; {@link #pause()} returns once every vCPU thread has
 * acknowledged and will not touch guest memory or its state again until resumed; {@link #close()}
 * stops and joins them. A vCPU thread that dies stops the others (QEMU's internal-error), its
 * exception is kept in {@link #failure()}, and pause never waits for it.
 *
 * <p>Migration: {@link #registerMigration} registers each vCPU's progress ({@link SoftVcpuState},
 * description {@code "soft-vcpu"}) under idstr {@code "cpu-soft"}, saved and loaded while paused,
 * so the destination continues the same page sequence; {@link #verifyContinuation} proves it.
 * Every page write is also reported through {@link GuestMemory#markWritten}, so the VMM write log
 * is this engine's dirty log.
 *
 * <p>Threads: lifecycle methods from any thread but a vCPU thread, serialized here; counters and
 * {@link #throttlePercentage} from any thread; {@link #snapshot} and {@link #populate} only while
 * paused. The verification methods are static and read memory on the caller's thread.
 */
public final class SoftCpuEngine implements CpuEngine {
    public static final String NAME = "soft";
    public static final String THREAD_PREFIX = "ferry-vcpu-";

    private final GuestMemory memory;
    private final SoftWorkload workload;
    private final WorkingSet workingSet;
    private final VcpuGate gate = new VcpuGate(NAME, THREAD_PREFIX);
    private final SoftVcpuState[] states;
    private final SoftVcpu[] vcpus;
    private final Thread[] threads;
    private final Object lifecycle = new Object();
    private final java.util.List<Program> programs = new java.util.concurrent.CopyOnWriteArrayList<>();

    /** A guest program and its thread, started with the vCPUs. */
    private static final class Program {
        final String name;
        final SoftGuestProgram body;
        volatile Thread thread;

        Program(String name, SoftGuestProgram body) {
            this.name = name;
            this.body = body;
        }
    }
    private volatile int throttle;
    private boolean closed;

    /** An engine on the system clock. */
    public SoftCpuEngine(GuestMemory memory, SoftWorkload workload) {
        this(memory, workload, System::nanoTime);
    }

    /**
     * An engine whose vCPUs pace themselves by {@code nanoClock} (monotonic nanoseconds, called from
     * the vCPU threads). Throws {@link IllegalArgumentException} when the working set is not all RAM
     * of {@code memory}. The memory must outlive the engine.
     */
    public SoftCpuEngine(GuestMemory memory, SoftWorkload workload, LongSupplier nanoClock) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.workload = Objects.requireNonNull(workload, "workload");
        Objects.requireNonNull(nanoClock, "nanoClock");
        this.workingSet = new WorkingSet(memory, workload);
        int n = workload.vcpus();
        this.states = new SoftVcpuState[n];
        this.vcpus = new SoftVcpu[n];
        this.threads = new Thread[n];
        for (int i = 0; i < n; i++) {
            states[i] = new SoftVcpuState(workload, i, gate::quiescent);
            vcpus[i] = new SoftVcpu(i, memory, workingSet, states[i], gate, nanoClock, () -> throttle);
        }
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int vcpuCount() {
        return workload.vcpus();
    }

    public SoftWorkload workload() {
        return workload;
    }

    /**
     * Lets the vCPUs run. Throws {@link IllegalStateException} once closed, or when a vCPU has died
     * (see {@link #failure()}): such an engine cannot resume.
     */
    @Override
    public void resume() {
        synchronized (lifecycle) {
            if (closed) {
                throw new IllegalStateException("soft: engine is closed");
            }
            gate.open(this::startThreads);
        }
    }

    /** Stops the vCPUs and waits until each acknowledged. Idempotent; never from a vCPU thread. */
    @Override
    public void pause() {
        synchronized (lifecycle) {
            gate.close(this::wakeThreads);
        }
    }

    /** True between {@link #resume()} and {@link #pause()} (and while no vCPU has died). */
    public boolean isRunning() {
        return gate.isOpen();
    }

    /** Stops and joins every vCPU thread. Idempotent. Does not close the memory. */
    @Override
    public void close() {
        synchronized (lifecycle) {
            if (closed) {
                return;
            }
            closed = true;
            gate.shutdown();
            wakeThreads();
            boolean interrupted = false;
            java.util.List<Thread> all = new java.util.ArrayList<>(java.util.Arrays.asList(threads));
            programs.forEach(p -> all.add(p.thread));
            for (Thread t : all) {
                while (t != null && t.isAlive()) {
                    try {
                        t.join();
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Auto-converge: the vCPUs dirty at {@code 100 - percentage} % of the workload's rate (QEMU's
     * throttle makes a vCPU sleep that share of its time; for a rate-driven guest the page budget
     * is what shrinks). Takes effect at each vCPU's next budget grant.
     */
    @Override
    public void setThrottlePercentage(int percentage) {
        if (percentage < 0 || percentage > 99) {
            throw new IllegalArgumentException("soft: throttle percentage must be 0..99, got " + percentage);
        }
        throttle = percentage;
    }

    @Override
    public int throttlePercentage() {
        return throttle;
    }

    /** The dirty rate the vCPUs aim for now, all together, in bytes per second (the throttle applied). */
    public double effectiveDirtyRate() {
        return workload.dirtyRateBytesPerSec() * (100 - throttle) / 100.0;
    }

    /** Pages written by all vCPUs (excluding {@link #populate}); fresh to within one batch while running. */
    public long pagesWritten() {
        long n = 0;
        for (SoftVcpuState s : states) {
            n += s.writes();
        }
        return n;
    }

    /** Bytes dirtied by all vCPUs; fresh to within one batch while running. */
    public long bytesDirtied() {
        long n = 0;
        for (SoftVcpuState s : states) {
            n += s.bytesDirtied();
        }
        return n;
    }

    /**
     * Why the vCPUs stopped on their own, if one died: an {@link IllegalStateException} naming the
     * vCPU, caused by the exception that killed its thread.
     */
    public Optional<Throwable> failure() {
        return Optional.ofNullable(gate.failure());
    }

    /**
     * Registers one {@link SoftVcpuState#VMSTATE} entry per vCPU: idstr {@value SoftVcpuState#IDSTR},
     * instance id = vCPU index, priority {@link MigrationPriority#CPU}. Call once per registry.
     */
    public void registerMigration(MigrationRegistry registry) {
        for (SoftVcpuState s : states) {
            registry.registerVmState(SoftVcpuState.IDSTR, s.index(), SoftVcpuState.VMSTATE, s, MigrationPriority.CPU);
        }
    }

    /** Detached copies of every vCPU's state, in index order. Paused only. */
    public List<SoftVcpuState> snapshot() {
        requirePaused("snapshot");
        List<SoftVcpuState> out = new ArrayList<>(states.length);
        for (SoftVcpuState s : states) {
            out.add(s.snapshot());
        }
        return out;
    }

    /** vCPU {@code index}'s live state (what migration saves and loads). */
    SoftVcpuState state(int index) {
        return states[index];
    }

    /**
     * Fills about {@code randomFraction} of the working set with valid pages of stamp 0 (the choice
     * of pages is derived from the seed, spread over the whole set), leaving the rest as it is —
     * a guest that is part random data, part zero pages, for benchmarks. The writes are logged like
     * the vCPUs'. Paused only; the caller's thread. Returns the pages written.
     */
    public long populate(double randomFraction) {
        if (!(randomFraction >= 0 && randomFraction <= 1)) {
            throw new IllegalArgumentException("soft: populate fraction must be 0..1, got " + randomFraction);
        }
        requirePaused("populate");
        long written = 0;
        for (long page = 0; page < workload.pages(); page++) {
            long draw = SplitMix64.mix(workload.seed() ^ SplitMix64.mix(page ^ 0x9090_9090_0000_0000L));
            if ((draw >>> 11) * 0x1.0p-53 < randomFraction) {
                SoftPage.write(workingSet.host(page), workingSet.gfn(page), 0, workload.ownerOf(page),
                        workload.seed());
                memory.markWritten(new Gpa(workload.gpaOf(page)), SoftWorkload.PAGE_SIZE);
                written++;
            }
        }
        return written;
    }

    /**
     * The verdict on working-set page {@code page} of {@code memory}: zero (never written),
     * written (header and body as the workload derives them) or corrupt (with the first bad field).
     */
    public static PageCheck verifyPage(GuestMemory memory, SoftWorkload workload, long page) {
        return SoftVerifier.verifyPage(new WorkingSet(memory, workload), page);
    }

    /** Checks every page of the working set; call with the engine writing it paused. */
    public static WorkingSetCheck verifyWorkingSet(GuestMemory memory, SoftWorkload workload) {
        return SoftVerifier.verifyWorkingSet(new WorkingSet(memory, workload));
    }

    /**
     * Proves the destination continued the workload exactly where the source stopped: replays each
     * vCPU's steps from {@code savedAtSwitchover} to the write count in {@code nowOnDestination},
     * requires the replayed RNG state to equal the destination's, and checks every replayed page on
     * {@code dest} (valid, holding the stamp of the last step that wrote it) and that no other page
     * of the partition is newer than the switchover. Both the destination memory and
     * {@code nowOnDestination} must be taken while its engine is paused.
     */
    public static ContinuationCheck verifyContinuation(GuestMemory dest, SoftWorkload workload,
                                                       List<SoftVcpuState> savedAtSwitchover,
                                                       List<SoftVcpuState> nowOnDestination) {
        return SoftVerifier.verifyContinuation(new WorkingSet(dest, workload), savedAtSwitchover,
                nowOnDestination);
    }

    /**
     * Adds guest code that runs on its own thread while the VM runs ({@link SoftGuestProgram}).
     * Before the first {@link #resume()} only; the thread is {@code ferry-vcpu-<name>}. A program
     * that throws stops the whole guest, like a vCPU that dies.
     */
    public void addProgram(String name, SoftGuestProgram program) {
        synchronized (lifecycle) {
            if (closed || gate.isOpen() || programs.stream().anyMatch(p -> p.thread != null)) {
                throw new IllegalStateException("soft: programs are added before the engine first runs");
            }
            programs.add(new Program(name, program));
        }
    }

    /** Called under the gate's lock by the first resume. */
    private void startThreads() {
        int index = threads.length;
        for (Program p : programs) {
            int id = index++;
            Thread t = new Thread(() -> runProgram(id, p), THREAD_PREFIX + p.name);
            t.setDaemon(true);
            p.thread = t;
            t.start();
            gate.started();
        }
        for (int i = 0; i < threads.length; i++) {
            Thread t = new Thread(vcpus[i], THREAD_PREFIX + i);
            t.setDaemon(true);
            t.start();
            threads[i] = t;
            gate.started();
        }
    }

    private void runProgram(int id, Program p) {
        Throwable failure = null;
        try {
            while (gate.park()) {
                while (gate.isOpen()) {
                    p.body.runSlice();
                }
            }
        } catch (Throwable t) {
            failure = t;
            org.slf4j.LoggerFactory.getLogger(SoftCpuEngine.class).error("soft guest program {} died; stopping the guest",
                    p.name, t);
        } finally {
            gate.exited(id, failure);
        }
    }

    /** Cuts a vCPU's park between grants short so it sees the closed gate at once. */
    private void wakeThreads() {
        for (Thread t : threads) {
            if (t != null) {
                LockSupport.unpark(t);
            }
        }
        for (Program p : programs) {
            Thread t = p.thread;
            if (t != null) {
                LockSupport.unpark(t);
            }
        }
    }

    private void requirePaused(String what) {
        if (!gate.quiescent()) {
            throw new IllegalStateException("soft: " + what + " needs the vCPUs paused");
        }
    }
}
