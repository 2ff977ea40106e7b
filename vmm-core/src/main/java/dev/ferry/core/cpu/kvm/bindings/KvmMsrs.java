package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_msrs} with its {@code struct kvm_msr_entry} array (KVM_GET_MSRS /
 * KVM_SET_MSRS), allocated for a fixed capacity:
 * <pre>
 *  0 nmsrs (u32)  4 pad (u32)
 *  8 entries[capacity], 16 bytes each:
 *      +0 index (u32)  +4 reserved (u32)  +8 data (u64)
 * </pre>
 * KVM_GET_MSRS reads {@code nmsrs} entries in order and stops at the first MSR it cannot read;
 * its return value (not {@code nmsrs}) says how many entries hold data. KVM refuses more than
 * 255 entries per call (the kernel's MAX_IO_MSRS, 256, is an exclusive bound).
 *
 * <p>{@link #toBytes()} saves the header and the {@code nmsrs} entries in use.
 */
public final class KvmMsrs extends KvmStruct {
    public static final int SIZE = 8;
    public static final int NMSRS_OFFSET = 0;
    public static final int ENTRIES_OFFSET = 8;
    /** {@code sizeof(struct kvm_msr_entry)}. */
    public static final int ENTRY_SIZE = 16;
    public static final int ENTRY_INDEX_OFFSET = 0;
    public static final int ENTRY_DATA_OFFSET = 8;

    private final int capacity;

    public KvmMsrs(int capacity) {
        super(SIZE + ENTRY_SIZE * checkCapacity(capacity));
        this.capacity = capacity;
    }

    /** A struct holding {@code indices} with zero data, {@code nmsrs} set, ready for KVM_GET_MSRS. */
    public static KvmMsrs of(int... indices) {
        KvmMsrs m = new KvmMsrs(indices.length);
        for (int i = 0; i < indices.length; i++) {
            m.set(i, indices[i], 0);
        }
        m.setNmsrs(indices.length);
        return m;
    }

    public int capacity() {
        return capacity;
    }

    public int nmsrs() {
        return u32(NMSRS_OFFSET);
    }

    public void setNmsrs(int n) {
        if (n < 0 || n > capacity) {
            throw new IllegalArgumentException("nmsrs " + n + " outside 0.." + capacity);
        }
        u32(NMSRS_OFFSET, n);
    }

    public int index(int i) {
        return u32(entry(i) + ENTRY_INDEX_OFFSET);
    }

    public long data(int i) {
        return u64(entry(i) + ENTRY_DATA_OFFSET);
    }

    public void setData(int i, long data) {
        u64(entry(i) + ENTRY_DATA_OFFSET, data);
    }

    public void set(int i, int index, long data) {
        int at = entry(i);
        u32(at + ENTRY_INDEX_OFFSET, index);
        u32(at + 4, 0);
        u64(at + ENTRY_DATA_OFFSET, data);
    }

    /** The entry holding MSR {@code index} among the first {@code nmsrs}, or -1. */
    public int find(int index) {
        for (int i = 0, n = nmsrs(); i < n; i++) {
            if (index(i) == index) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public int byteLength() {
        return SIZE + ENTRY_SIZE * Math.min(Math.max(nmsrs(), 0), capacity);
    }

    @Override
    protected void checkLoadable(byte[] b) {
        VariableLength.check(this, b, SIZE, ENTRY_SIZE, capacity, NMSRS_OFFSET);
    }

    private int entry(int i) {
        return ENTRIES_OFFSET + ENTRY_SIZE * checkIndex(i, capacity, "entries");
    }

    private static int checkCapacity(int capacity) {
        if (capacity < 0 || capacity > 4096) {
            throw new IllegalArgumentException("MSR capacity " + capacity + " outside 0..4096");
        }
        return capacity;
    }
}
