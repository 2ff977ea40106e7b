package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.Gpa;

/**
 * ferry-guest's progress as its record in guest memory shows it: the state after the last
 * completed step. The record sits at {@link GuestLayout#PROGRESS_GPA}, and only the guest writes
 * it (the VMM zeroes it at boot). It is twelve little-endian longs:
 * <pre>
 *  +0  magic "FerryPrg" (written last when the guest creates the record; 0 = not started)
 *  +8  version (1)       +16 seed         +24 counter: the last completed step
 * +32  slot[0]: counter, rng, hash, last page GPA
 * +64  slot[1]: counter, rng, hash, last page GPA
 * </pre>
 * Step {@code k} fills {@code slot[k % 2]} and only then stores {@code counter = k}. Whatever
 * instruction the vCPU stopped at, {@code slot[counter % 2]} is therefore a complete state, so
 * the record can be read while the guest is paused anywhere (rule R1 in {@link GuestVerifier}).
 *
 * <p>To verify a migration, read the record on the destination after the incoming migration has
 * loaded RAM and before the vCPU resumes. That is the record as it stood at switchover. Read it
 * again later, while the guest is paused, and give both to
 * {@link GuestVerifier#verifyContinuation}.
 *
 * @param counter     the last completed step (0 before the first)
 * @param rng         the RNG state after step {@code counter}
 * @param hash        the hash chain after step {@code counter}
 * @param lastPageGpa the GPA of the page step {@code counter} wrote (0 before the first step)
 */
public record GuestProgress(long counter, long rng, long hash, long lastPageGpa) {
    /** "FerryPrg". */
    public static final long MAGIC = 0x4665727279507267L;
    public static final long VERSION = 1;
    static final int SLOTS_OFFSET = 32;
    static final int SLOT_BYTES = 32;

    /** The state before the first step, as the guest creates its record. */
    public static GuestProgress initial(GuestParams params) {
        return new GuestProgress(0, GuestAlgorithm.initialRng(params.seed()), GuestAlgorithm.initialHash(params.seed()),
                0);
    }

    /**
     * Reads the record of the guest that {@code params} describe. A record that does not exist
     * yet (magic 0: the guest has not started, or was stopped while creating it) reads as
     * {@link #initial}. Throws when the record belongs to another seed or version, or is torn
     * (the slot does not match the counter, which a guest stopped at any instruction never leaves).
     */
    public static GuestProgress read(GuestMemory memory, GuestParams params) {
        long base = GuestLayout.PROGRESS_GPA;
        long magic = memory.readLong(Gpa.of(base));
        if (magic == 0) {
            return initial(params);
        }
        long version = memory.readLong(Gpa.of(base + 8));
        long seed = memory.readLong(Gpa.of(base + 16));
        long counter = memory.readLong(Gpa.of(base + 24));
        if (magic != MAGIC || version != VERSION) {
            throw new IllegalStateException("ferry-guest: no version-1 progress record at gpa 0x"
                    + Long.toHexString(base) + " (magic 0x" + Long.toHexString(magic) + ", version " + version + ")");
        }
        if (seed != params.seed()) {
            throw new IllegalStateException("ferry-guest: the progress record belongs to seed 0x"
                    + Long.toHexString(seed) + ", the boot parameters say 0x" + Long.toHexString(params.seed()));
        }
        long slot = base + SLOTS_OFFSET + SLOT_BYTES * (counter & 1);
        long slotCounter = memory.readLong(Gpa.of(slot));
        if (slotCounter != counter) {
            throw new IllegalStateException("ferry-guest: torn progress record: counter "
                    + Long.toUnsignedString(counter) + " but slot " + (counter & 1) + " holds step "
                    + Long.toUnsignedString(slotCounter));
        }
        return new GuestProgress(counter, memory.readLong(Gpa.of(slot + 8)), memory.readLong(Gpa.of(slot + 16)),
                memory.readLong(Gpa.of(slot + 24)));
    }

    /** Reads the boot parameters, then the record. */
    public static GuestProgress read(GuestMemory memory) {
        return read(memory, GuestParams.read(memory));
    }

    @Override
    public String toString() {
        return "GuestProgress[counter=" + Long.toUnsignedString(counter) + ", rng=0x" + Long.toHexString(rng)
                + ", hash=0x" + Long.toHexString(hash) + ", lastPageGpa=0x" + Long.toHexString(lastPageGpa) + "]";
    }
}
