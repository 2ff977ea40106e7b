package dev.ferry.core.cpu.soft;

/**
 * The soft engine's randomness, all of it a pure function of 64-bit values so that any vCPU's
 * past can be replayed from a saved state (Steele, Lea and Flood's SplitMix64). A vCPU's RNG state
 * is the generator's counter: one step adds {@link #GAMMA}, the output is {@link #mix} of the new
 * counter. Stateless; used from every thread.
 */
final class SplitMix64 {
    static final long GAMMA = 0x9E3779B97F4A7C15L;

    private SplitMix64() {
    }

    /** The RNG state after one step from {@code state}. */
    static long step(long state) {
        return state + GAMMA;
    }

    /** The RNG state one step before {@code state}: the generator runs backwards as easily. */
    static long unstep(long state) {
        return state - GAMMA;
    }

    /** The value a step that arrived at {@code state} yields. */
    static long output(long state) {
        return mix(state);
    }

    /** The working-set page (relative to the partition start) chosen by the step that arrived at {@code state}. */
    static long pick(long state, long partitionSize) {
        return Long.remainderUnsigned(output(state), partitionSize);
    }

    /** vCPU {@code vcpu}'s RNG state before its first step. */
    static long initialState(long seed, int vcpu) {
        return mix(seed ^ mix(0x5EED_0000_0000_0000L + vcpu));
    }

    /** SplitMix64's finalizer (Stafford variant 13): a bijection that scatters every input bit. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
