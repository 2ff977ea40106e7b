package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_msr_list} (KVM_GET_MSR_INDEX_LIST), allocated for a fixed capacity:
 * <pre>
 *  0 nmsrs (u32)
 *  4 indices[capacity] (u32)
 * </pre>
 * {@code nmsrs} goes in as the capacity; when it is too small KVM fails with E2BIG and writes the
 * count it needs, so a caller asks with 0 first.
 */
public final class KvmMsrList extends KvmStruct {
    public static final int SIZE = 4;
    public static final int NMSRS_OFFSET = 0;
    public static final int INDICES_OFFSET = 4;

    private final int capacity;

    public KvmMsrList(int capacity) {
        super(SIZE + 4 * checkCapacity(capacity));
        this.capacity = capacity;
        setNmsrs(capacity);
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
        return u32(INDICES_OFFSET + 4 * checkIndex(i, capacity, "indices"));
    }

    /** The first {@code nmsrs} indices (at most the capacity). */
    public int[] indices() {
        int n = Math.min(Math.max(nmsrs(), 0), capacity);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = index(i);
        }
        return out;
    }

    @Override
    public int byteLength() {
        return SIZE + 4 * Math.min(Math.max(nmsrs(), 0), capacity);
    }

    @Override
    protected void checkLoadable(byte[] b) {
        VariableLength.check(this, b, SIZE, 4, capacity, NMSRS_OFFSET);
    }

    private static int checkCapacity(int capacity) {
        if (capacity < 0 || capacity > 16384) {
            throw new IllegalArgumentException("MSR list capacity " + capacity + " outside 0..16384");
        }
        return capacity;
    }
}
