package dev.ferry.core.cpu.soft;

import dev.ferry.core.cpu.VcpuGate;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.locks.LockSupport;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * The body of one soft vCPU thread ({@code ferry-vcpu-<index>}): while the gate is open, take a
 * page budget from the pacer, write that many pages of its partition, publish progress, park
 * until the next grant; when the gate closes, publish and park in the gate (the acknowledgement).
 *
 * <p>Step {@code k} (the vCPU's {@code k}-th write, {@code k >= 1}): advance the RNG, pick page
 * {@code partitionStart + output mod partitionSize}, write it whole with stamp {@code k} (see
 * {@link SoftPage}) through its host address, then report it to {@link GuestMemory#markWritten}
 * — the soft engine's MMU — so the migration write log sees it. Writing before marking is what
 * keeps the log safe: a sender that harvests the bit afterwards reads the new content, one that
 * harvested it before gets the bit again on the next sync.
 *
 * <p>Everything here runs on the vCPU thread. The hot loop allocates nothing but the {@link Gpa}
 * that {@code markWritten} takes, which C2 scalar-replaces once {@code markWritten} is inlined.
 */
final class SoftVcpu implements Runnable {
    private static final Logger LOG = LoggerFactory.getLogger(SoftVcpu.class);
    private final int index;
    private final GuestMemory memory;
    private final WorkingSet workingSet;
    private final SoftVcpuState state;
    private final VcpuGate gate;
    private final LongSupplier clock;
    private final IntSupplier throttle;
    private final DirtyPacer pacer;
    private final long partitionStart;
    private final long partitionSize;
    private final long seed;

    SoftVcpu(int index, GuestMemory memory, WorkingSet workingSet, SoftVcpuState state, VcpuGate gate,
             LongSupplier clock, IntSupplier throttle) {
        SoftWorkload w = workingSet.workload();
        this.index = index;
        this.memory = memory;
        this.workingSet = workingSet;
        this.state = state;
        this.gate = gate;
        this.clock = clock;
        this.throttle = throttle;
        this.pacer = new DirtyPacer(w.dirtyRateBytesPerSec(), w.vcpus());
        this.partitionStart = w.partitionStart(index);
        this.partitionSize = w.partitionSize(index);
        this.seed = w.seed();
    }

    @Override
    public void run() {
        Throwable failure = null;
        try {
            while (gate.park()) {
                runUntilStopped();
            }
        } catch (Throwable t) {
            failure = t;
            LOG.error("soft vCPU {} died after {} writes; stopping the other vCPUs", index, state.writes(), t);
        } finally {
            gate.exited(index, failure);
        }
    }

    /** Runs the workload until the gate closes; the state is published however this ends. */
    private void runUntilStopped() {
        long rng = state.rng();
        long writes = state.writes();
        long bytes = state.bytesDirtied();
        try {
            pacer.restart(clock.getAsLong());
            while (gate.isOpen()) {
                int throttlePercent = throttle.getAsInt();
                long budget = pacer.grant(clock.getAsLong(), throttlePercent);
                for (long n = 0; n < budget && gate.isOpen(); n++) {
                    rng = SplitMix64.step(rng);
                    long page = partitionStart + SplitMix64.pick(rng, partitionSize);
                    writes++;
                    writePage(page, writes);
                    bytes += SoftWorkload.PAGE_SIZE;
                }
                state.publish(rng, writes, bytes);
                long wait = pacer.nextGrantAt(throttlePercent) - clock.getAsLong();
                if (wait > 0 && gate.isOpen()) {
                    LockSupport.parkNanos(this, wait);
                }
                Thread.interrupted(); // nobody interrupts a vCPU; a stray interrupt must not make parkNanos spin
            }
        } finally {
            state.publish(rng, writes, bytes);
        }
    }

    private void writePage(long page, long stamp) {
        SoftPage.write(workingSet.host(page), workingSet.gfn(page), stamp, index, seed);
        memory.markWritten(new Gpa(workingSet.workload().gpaOf(page)), SoftWorkload.PAGE_SIZE);
    }
}
