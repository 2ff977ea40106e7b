package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.Gpa;

/**
 * ferry-guest run in Java: the reference implementation of {@code ferry_guest.h}. It makes the
 * same stores to guest memory in the same order as the program ({@link GuestAlgorithm} has the
 * algorithm). Only the port I/O is left out: {@link #bootStatus()} is what the guest would have
 * reported on the status port, and {@link #heartbeatDue()} tells whether the last step would
 * have sent a heartbeat.
 *
 * <p>Tests use it to produce exactly the memory a real vCPU would leave, with no KVM. It can
 * also stop part-way through a step ({@link #stepPartially}), the way a paused vCPU can. The
 * VMM's stores go through {@link GuestMemory}, so its write log sees them.
 *
 * <p>One thread; the memory must stay open.
 */
public final class GuestMirror {
    /** Stores one step makes: the page, then the slot's four longs, then the counter. */
    static final int STORES_PER_STEP = GuestPage.STORES + 4 + 1;

    private final GuestMemory memory;
    private final GuestParams params;
    private final GuestStatus bootStatus;
    private long counter;
    private long rng;
    private long hash;

    private GuestMirror(GuestMemory memory, GuestParams params, GuestStatus bootStatus, GuestProgress state) {
        this.memory = memory;
        this.params = params;
        this.bootStatus = bootStatus;
        this.counter = state.counter();
        this.rng = state.rng();
        this.hash = state.hash();
    }

    /**
     * What the guest does at its entry point. It reads the boot parameters and creates the
     * progress record, or takes up the one it finds (status {@link GuestStatus#RESUMED}). Throws
     * {@link IllegalStateException} where the guest would report a fault.
     */
    public static GuestMirror boot(GuestMemory memory) {
        GuestParams params = GuestParams.read(memory);
        long base = GuestLayout.PROGRESS_GPA;
        if (memory.readLong(Gpa.of(base)) != GuestProgress.MAGIC) {
            GuestProgress s = GuestProgress.initial(params);
            long slot0 = base + GuestProgress.SLOTS_OFFSET;
            long slot1 = slot0 + GuestProgress.SLOT_BYTES;
            long[][] stores = {
                {slot0, 0}, {slot0 + 8, s.rng()}, {slot0 + 16, s.hash()}, {slot0 + 24, 0},
                {slot1, 0}, {slot1 + 8, 0}, {slot1 + 16, 0}, {slot1 + 24, 0},
                {base + 8, GuestProgress.VERSION}, {base + 16, params.seed()}, {base + 24, 0},
                {base, GuestProgress.MAGIC},
            };
            for (long[] st : stores) {
                memory.writeLong(Gpa.of(st[0]), st[1]);
            }
            return new GuestMirror(memory, params, GuestStatus.STARTED, s);
        }
        return new GuestMirror(memory, params, GuestStatus.RESUMED, GuestProgress.read(memory, params));
    }

    public GuestParams params() {
        return params;
    }

    public GuestStatus bootStatus() {
        return bootStatus;
    }

    /** The state after the last completed step; what the record holds. */
    public GuestProgress progress() {
        long last = counter == 0 ? 0 : lastPageGpa();
        return new GuestProgress(counter, rng, hash, last);
    }

    private long lastPageGpa() {
        return memory.readLong(Gpa.of(GuestLayout.PROGRESS_GPA + GuestProgress.SLOTS_OFFSET
                + GuestProgress.SLOT_BYTES * (counter & 1) + 24));
    }

    /** True when the guest would report DONE instead of taking another step. */
    public boolean done() {
        return params.done(counter);
    }

    /** True when the guest would send a heartbeat after the step it last completed. */
    public boolean heartbeatDue() {
        return counter != 0 && Long.remainderUnsigned(counter, params.pagesPerHeartbeat()) == 0;
    }

    /** Runs one step; throws when {@link #done()}. */
    public void step() {
        stepPartially(STORES_PER_STEP);
    }

    /** Runs up to {@code steps} steps, fewer when the guest gets done; returns how many ran. */
    public long run(long steps) {
        long n = 0;
        while (n < steps && !done()) {
            step();
            n++;
        }
        return n;
    }

    /**
     * Makes only the first {@code stores} (0..{@value #STORES_PER_STEP}) of the next step's stores,
     * in the guest's order. Memory is then what a vCPU paused at that instruction leaves. With
     * fewer than all of them, this mirror stays before the step, as the record does. The next
     * {@link #step()} redoes the whole step, which stores the same values again: that is
     * what a resumed vCPU's memory looks like once it has finished the step.
     */
    void stepPartially(int stores) {
        if (stores < 0 || stores > STORES_PER_STEP) {
            throw new IllegalArgumentException("stores " + stores + " outside 0.." + STORES_PER_STEP);
        }
        if (done()) {
            throw new IllegalStateException("ferry-guest is done: counter " + counter + " reached max steps "
                    + params.maxSteps());
        }
        long k = counter + 1;
        long nextRng = rng + GuestAlgorithm.GAMMA;
        long gfn = params.gfnOf(GuestAlgorithm.pick(nextRng, params.workingSetPages()));
        long tag = GuestAlgorithm.tag(gfn, k);
        Gpa page = Gpa.of(gfn * GuestPage.SIZE);
        GuestPage.writeStores(memory.hostAddress(page, GuestPage.SIZE), gfn, k, params.seed(),
                Math.min(stores, GuestPage.STORES));
        memory.markWritten(page, GuestPage.SIZE);
        long nextHash = GuestAlgorithm.chain(hash, tag);
        long slot = GuestLayout.PROGRESS_GPA + GuestProgress.SLOTS_OFFSET + GuestProgress.SLOT_BYTES * (k & 1);
        long[][] record = {{slot, k}, {slot + 8, nextRng}, {slot + 16, nextHash}, {slot + 24, page.raw()},
            {GuestLayout.PROGRESS_GPA + 24, k}};
        for (int i = 0; i < record.length && GuestPage.STORES + i < stores; i++) {
            memory.writeLong(Gpa.of(record[i][0]), record[i][1]);
        }
        if (stores == STORES_PER_STEP) {
            counter = k;
            rng = nextRng;
            hash = nextHash;
        }
    }
}
