package dev.ferry.core.cpu.kvm.ioctls;

import java.util.Arrays;

/**
 * Which MSRs of a candidate list (usually KVM_GET_MSR_INDEX_LIST) one vCPU can read: KVM lists
 * what the host <em>might</em> save, but reading some of them fails for a given guest CPUID or
 * host (e.g. PMU or feature MSRs the CPU model lacks). Migration saves {@link #readable()}.
 */
public record MsrProbe(int[] readable, int[] unreadable) {
    public MsrProbe {
        readable = readable.clone();
        unreadable = unreadable.clone();
    }

    @Override
    public int[] readable() {
        return readable.clone();
    }

    @Override
    public int[] unreadable() {
        return unreadable.clone();
    }

    /** MSR numbers in hex, as the SDM writes them: {@code [0x10, 0xc0000080]}. */
    public static String hex(int[] msrs) {
        return Arrays.stream(msrs).mapToObj(m -> "0x" + Integer.toHexString(m)).toList().toString();
    }

    @Override
    public String toString() {
        return readable.length + " readable, unreadable: " + hex(unreadable);
    }
}
