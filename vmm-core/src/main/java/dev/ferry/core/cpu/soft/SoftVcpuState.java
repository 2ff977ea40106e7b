package dev.ferry.core.cpu.soft;

import dev.ferry.core.migration.VmStateDescription;

import java.util.function.BooleanSupplier;

/**
 * One soft vCPU's progress — the whole of its architectural state: the RNG state (which page comes
 * next), the write count (the stamp of its last page) and the bytes it dirtied. Migrating it lets
 * the workload continue on the destination exactly where it stopped.
 *
 * <p>An engine's live state objects are written by their vCPU thread (published once per batch of
 * pages) and read or loaded by other threads only while the engine is paused, which the
 * {@link #VMSTATE} description enforces. A {@link #snapshot()} is a detached copy, free to keep.
 *
 * <p>On the wire ({@code "soft-vcpu"}, version 1), identity first so that a refused load changes
 * nothing:
 * <pre>
 * be32 index | be64 seed | be32 vcpus | be64 working_set | be64 working_set_base
 * | be64 rng | be64 writes | be64 bytes_dirtied
 * </pre>
 * The identity fields must equal the destination engine's workload; otherwise the load fails with
 * a {@link dev.ferry.core.migration.MigrationException} naming the field.
 */
public final class SoftVcpuState {
    /** The section idstr the engine registers its vCPUs under; the instance id is the vCPU index. */
    public static final String IDSTR = "cpu-soft";
    public static final VmStateDescription<SoftVcpuState> VMSTATE = VmStateDescription.<SoftVcpuState>builder(
                    "soft-vcpu", 1)
            .u32("index", SoftVcpuState::indexForSave, SoftVcpuState::loadIndex)
            .u64("seed", s -> s.workload.seed(), (s, v) -> s.expect("seed", v, s.workload.seed()))
            .u32("vcpus", s -> s.workload.vcpus(), (s, v) -> s.expect("vcpus", v, s.workload.vcpus()))
            .u64("working_set", s -> s.workload.workingSetBytes(),
                    (s, v) -> s.expect("working_set", v, s.workload.workingSetBytes()))
            .u64("working_set_base", s -> s.workload.workingSetBase(),
                    (s, v) -> s.expect("working_set_base", v, s.workload.workingSetBase()))
            .u64("rng", SoftVcpuState::rng, (s, v) -> s.rng = v)
            .u64("writes", SoftVcpuState::writes, SoftVcpuState::loadWrites)
            .u64("bytes_dirtied", SoftVcpuState::bytesDirtied, SoftVcpuState::loadBytesDirtied)
            .build();

    private final SoftWorkload workload;
    private final int index;
    /** True when the owning engine's vCPUs are stopped; always true for a detached copy. */
    private final BooleanSupplier stopped;
    private volatile long rng;
    private volatile long writes;
    private volatile long bytesDirtied;

    /** vCPU {@code index}'s state before its first step. */
    SoftVcpuState(SoftWorkload workload, int index, BooleanSupplier stopped) {
        this(workload, index, stopped, SplitMix64.initialState(workload.seed(), index), 0, 0);
    }

    private SoftVcpuState(SoftWorkload workload, int index, BooleanSupplier stopped, long rng, long writes,
                          long bytesDirtied) {
        this.workload = workload;
        this.index = index;
        this.stopped = stopped;
        this.rng = rng;
        this.writes = writes;
        this.bytesDirtied = bytesDirtied;
    }

    /** A detached state, as a test or a verifier builds one. */
    public static SoftVcpuState of(SoftWorkload workload, int index, long rng, long writes) {
        return new SoftVcpuState(workload, index, () -> true, rng, writes, writes * SoftWorkload.PAGE_SIZE);
    }

    public SoftWorkload workload() {
        return workload;
    }

    public int index() {
        return index;
    }

    /** The RNG state: the next page is picked by the step from this value. */
    public long rng() {
        return rng;
    }

    /** Pages written so far: the stamp of this vCPU's latest page. */
    public long writes() {
        return writes;
    }

    public long bytesDirtied() {
        return bytesDirtied;
    }

    /** A detached copy. Consistent when the engine is paused (the engine's snapshot insists). */
    public SoftVcpuState snapshot() {
        return new SoftVcpuState(workload, index, () -> true, rng, writes, bytesDirtied);
    }

    /** vCPU thread: makes its progress visible, once per batch and when it stops. */
    void publish(long rngNow, long writesNow, long bytesNow) {
        rng = rngNow;
        writes = writesNow;
        bytesDirtied = bytesNow;
    }

    /** Overwrites the RNG state (tests that prove a wrong continuation is caught). Paused only. */
    void forceRng(long value) {
        requireStopped();
        rng = value;
    }

    private void requireStopped() {
        if (!stopped.getAsBoolean()) {
            throw new IllegalStateException("soft vCPU " + index + ": state accessed while the vCPUs run;"
                    + " pause the engine first");
        }
    }

    private int indexForSave() {
        requireStopped();
        return index;
    }

    private void loadIndex(int v) {
        if (!stopped.getAsBoolean()) {
            throw new IllegalArgumentException("soft vCPU " + index + ": state loaded while the vCPUs run;"
                    + " the destination must be paused (inmigrate)");
        }
        if (v != index) {
            throw new IllegalArgumentException("stream carries vCPU " + Integer.toUnsignedString(v)
                    + " for soft vCPU " + index);
        }
    }

    private void expect(String field, long streamValue, long mine) {
        if (streamValue != mine) {
            throw new IllegalArgumentException("soft workload mismatch on vCPU " + index + ": the source ran with "
                    + field + " " + describe(field, streamValue) + ", this engine runs with " + field + " "
                    + describe(field, mine)
                    + "; start the destination with the source's soft workload (seed, vcpus, working set)");
        }
    }

    private static String describe(String field, long v) {
        return field.equals("vcpus") ? Long.toString(v) : "0x" + Long.toHexString(v);
    }

    private void loadWrites(long v) {
        if (v < 0) {
            throw new IllegalArgumentException("soft vCPU " + index + ": write count " + Long.toUnsignedString(v)
                    + " out of range");
        }
        writes = v;
    }

    private void loadBytesDirtied(long v) {
        if (v != writes * SoftWorkload.PAGE_SIZE) {
            throw new IllegalArgumentException("soft vCPU " + index + ": " + Long.toUnsignedString(v)
                    + " bytes dirtied does not match " + writes + " page writes");
        }
        bytesDirtied = v;
    }

    @Override
    public String toString() {
        return "soft vCPU " + index + " {rng 0x" + Long.toHexString(rng) + ", writes " + writes + "}";
    }
}
