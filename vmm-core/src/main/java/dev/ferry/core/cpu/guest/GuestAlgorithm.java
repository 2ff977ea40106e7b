package dev.ferry.core.cpu.guest;

/**
 * The arithmetic of ferry-guest, the Java copy of {@code src/main/guest/ferry_guest.h}. This
 * class, {@link GuestPage} (the PAGE FORMAT), {@link GuestMirror} and {@link GuestVerifier} follow
 * the algorithm below. The C header carries the same text. Keep the two in lockstep;
 * GuestLockstepTest runs both and compares.
 * <pre>
 * ALGORITHM (all arithmetic on u64, wrapping)
 *   mix(z):      z = (z ^ z&gt;&gt;30) * 0xBF58476D1CE4E5B9; z = (z ^ z&gt;&gt;27) * 0x94D049BB133111EB;
 *                return z ^ z&gt;&gt;31                                  (SplitMix64's finalizer)
 *   scramble(z): z = (z ^ z&gt;&gt;32) * 0xD6E8FEB86659FD93; return z ^ z&gt;&gt;32
 *   GAMMA = 0x9E3779B97F4A7C15
 *   Entry: read and check the boot parameters; if they are bad, stop with 0x80|reason.
 *     If record.magic != "FerryPrg", create the record: slot[0] = { 0, rng_0, hash_0, 0 },
 *     slot[1] = 0, version, seed, counter = 0, and magic last. Here
 *     rng_0 = mix(seed ^ mix(0x5EED000000000000 + vcpu)) with vcpu = 0, and
 *     hash_0 = mix(seed ^ HASH_IV). Then OUT STATUS_PORT, STARTED. If the record exists
 *     (version 1, same seed, slot[counter % 2].counter == counter), take counter, rng and hash
 *     from the slot and OUT STATUS_PORT, RESUMED. Any other record is fault 0x85 (stop with it).
 *   Loop: if max_steps != 0 and counter &gt;= max_steps: stop with DONE.
 *     Otherwise run step k = counter + 1:
 *       rng_k  = rng_{k-1} + GAMMA
 *       p      = mix(rng_k) mod ws_pages          (a working-set page index)
 *       gfn    = ws_base / 4096 + p;  t = mix(gfn ^ mix(k))
 *       write page gfn with stamp k in the PAGE FORMAT and its store order
 *       hash_k = mix(hash_{k-1} ^ t)
 *       slot[k % 2] = { k, rng_k, hash_k, gfn * 4096 };  then record.counter = k
 *       if k % pages_per_heartbeat == 0: OUT HEARTBEAT_PORT, (u32) k
 *   Stop with S: repeat forever { OUT STATUS_PORT, S; HLT if in ring 0 }. In ring 3, which
 *     cannot halt, every repeat is another exit. The VMM stops running the vCPU once it sees
 *     DONE or a fault; the guest will do nothing else.
 *   The guest stores everything it needs between steps in guest memory (the record). Inside a
 *   step it also uses registers and its stack, and those migrate with the vCPU.
 * </pre>
 * Stateless.
 */
final class GuestAlgorithm {
    static final long GAMMA = 0x9E3779B97F4A7C15L;
    /** "FerryHsh": the hash chain's start is {@code mix(seed ^ HASH_IV)}. */
    static final long HASH_IV = 0x4665727279487368L;
    static final long RNG_IV = 0x5EED_0000_0000_0000L;

    private GuestAlgorithm() {
    }

    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    static long scramble(long z) {
        z = (z ^ (z >>> 32)) * 0xD6E8FEB86659FD93L;
        return z ^ (z >>> 32);
    }

    /** rng_0 of vCPU 0 (the only vCPU of version 1). */
    static long initialRng(long seed) {
        return mix(seed ^ mix(RNG_IV + 0));
    }

    static long initialHash(long seed) {
        return mix(seed ^ HASH_IV);
    }

    /** The working-set page index that the step arriving at RNG state {@code rng} picks. */
    static long pick(long rng, long workingSetPages) {
        return Long.remainderUnsigned(mix(rng), workingSetPages);
    }

    /** {@code t = mix(gfn ^ mix(k))}: it seeds the page body and extends the hash chain. */
    static long tag(long gfn, long k) {
        return mix(gfn ^ mix(k));
    }

    /** hash_k from hash_{k-1} and step k's tag. */
    static long chain(long hash, long tag) {
        return mix(hash ^ tag);
    }
}
