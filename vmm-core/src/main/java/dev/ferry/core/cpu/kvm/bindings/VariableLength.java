package dev.ferry.core.cpu.kvm.bindings;

/** Length checks for structs that end in a counted array (kvm_msrs, kvm_cpuid2, kvm_msr_list). */
final class VariableLength {
    private VariableLength() {
    }

    /**
     * Checks that {@code b} is a header of {@code header} bytes followed by whole entries, no more
     * than {@code capacity} of them, and that the count stored at {@code countOffset} (u32,
     * little-endian) says exactly that many.
     */
    static void check(KvmStruct s, byte[] b, int header, int entrySize, int capacity, int countOffset) {
        String what = s.getClass().getSimpleName();
        if (b.length < header || (b.length - header) % entrySize != 0) {
            throw new IllegalArgumentException(what + ": " + b.length + " bytes is not a " + header
                    + "-byte header plus whole " + entrySize + "-byte entries");
        }
        int entries = (b.length - header) / entrySize;
        if (entries > capacity) {
            throw new IllegalArgumentException(what + ": " + entries + " entries do not fit the capacity of "
                    + capacity);
        }
        int count = (b[countOffset] & 0xff) | (b[countOffset + 1] & 0xff) << 8 | (b[countOffset + 2] & 0xff) << 16
                | (b[countOffset + 3] & 0xff) << 24;
        if (count != entries) {
            throw new IllegalArgumentException(what + ": header counts " + Integer.toUnsignedString(count)
                    + " entries but " + entries + " follow");
        }
    }
}
