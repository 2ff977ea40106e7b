package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_cpuid2} with its {@code struct kvm_cpuid_entry2} array
 * (KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2), allocated for a fixed capacity:
 * <pre>
 *  0 nent (u32)  4 padding (u32)
 *  8 entries[capacity], 40 bytes each:
 *      +0 function  +4 index  +8 flags  +12 eax  +16 ebx  +20 ecx  +24 edx  +28 padding[3]  (u32)
 * </pre>
 * {@code index} is the sub-leaf (ECX input); it matters only when {@code flags} has
 * KVM_CPUID_FLAG_SIGNIFCANT_INDEX. For KVM_GET_SUPPORTED_CPUID, {@code nent} goes in as the
 * capacity and comes back as the number of entries KVM filled.
 */
public final class KvmCpuid2 extends KvmStruct {
    public static final int SIZE = 8;
    public static final int NENT_OFFSET = 0;
    public static final int ENTRIES_OFFSET = 8;
    /** {@code sizeof(struct kvm_cpuid_entry2)}. */
    public static final int ENTRY_SIZE = 40;
    public static final int ENTRY_FUNCTION_OFFSET = 0;
    public static final int ENTRY_INDEX_OFFSET = 4;
    public static final int ENTRY_FLAGS_OFFSET = 8;
    public static final int ENTRY_EAX_OFFSET = 12;
    public static final int ENTRY_EBX_OFFSET = 16;
    public static final int ENTRY_ECX_OFFSET = 20;
    public static final int ENTRY_EDX_OFFSET = 24;

    private final int capacity;

    public KvmCpuid2(int capacity) {
        super(SIZE + ENTRY_SIZE * checkCapacity(capacity));
        this.capacity = capacity;
    }

    public int capacity() {
        return capacity;
    }

    public int nent() {
        return u32(NENT_OFFSET);
    }

    public void setNent(int n) {
        if (n < 0 || n > capacity) {
            throw new IllegalArgumentException("nent " + n + " outside 0.." + capacity);
        }
        u32(NENT_OFFSET, n);
    }

    public int function(int i) {
        return u32(entry(i) + ENTRY_FUNCTION_OFFSET);
    }

    public int index(int i) {
        return u32(entry(i) + ENTRY_INDEX_OFFSET);
    }

    public int flags(int i) {
        return u32(entry(i) + ENTRY_FLAGS_OFFSET);
    }

    public int eax(int i) {
        return u32(entry(i) + ENTRY_EAX_OFFSET);
    }

    public int ebx(int i) {
        return u32(entry(i) + ENTRY_EBX_OFFSET);
    }

    public int ecx(int i) {
        return u32(entry(i) + ENTRY_ECX_OFFSET);
    }

    public int edx(int i) {
        return u32(entry(i) + ENTRY_EDX_OFFSET);
    }

    /** Writes entry {@code i} whole (padding zeroed). */
    public void set(int i, int function, int index, int flags, int eax, int ebx, int ecx, int edx) {
        int at = entry(i);
        u32(at + ENTRY_FUNCTION_OFFSET, function);
        u32(at + ENTRY_INDEX_OFFSET, index);
        u32(at + ENTRY_FLAGS_OFFSET, flags);
        u32(at + ENTRY_EAX_OFFSET, eax);
        u32(at + ENTRY_EBX_OFFSET, ebx);
        u32(at + ENTRY_ECX_OFFSET, ecx);
        u32(at + ENTRY_EDX_OFFSET, edx);
        u32(at + 28, 0);
        u32(at + 32, 0);
        u32(at + 36, 0);
    }

    public void setEax(int i, int v) {
        u32(entry(i) + ENTRY_EAX_OFFSET, v);
    }

    public void setEbx(int i, int v) {
        u32(entry(i) + ENTRY_EBX_OFFSET, v);
    }

    public void setEcx(int i, int v) {
        u32(entry(i) + ENTRY_ECX_OFFSET, v);
    }

    public void setEdx(int i, int v) {
        u32(entry(i) + ENTRY_EDX_OFFSET, v);
    }

    /**
     * The first entry among {@code nent} for leaf {@code function} and sub-leaf {@code index}
     * (the sub-leaf compared only where the entry says it is significant), or -1.
     */
    public int find(int function, int index) {
        for (int i = 0, n = nent(); i < n; i++) {
            if (function(i) == function && ((flags(i) & KvmConstants.KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0
                    || index(i) == index)) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public int byteLength() {
        return SIZE + ENTRY_SIZE * Math.min(Math.max(nent(), 0), capacity);
    }

    @Override
    protected void checkLoadable(byte[] b) {
        VariableLength.check(this, b, SIZE, ENTRY_SIZE, capacity, NENT_OFFSET);
    }

    private int entry(int i) {
        return ENTRIES_OFFSET + ENTRY_SIZE * checkIndex(i, capacity, "entries");
    }

    private static int checkCapacity(int capacity) {
        if (capacity < 0 || capacity > 4096) {
            throw new IllegalArgumentException("CPUID capacity " + capacity + " outside 0..4096");
        }
        return capacity;
    }
}
