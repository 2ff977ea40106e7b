package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_xcrs} (KVM_GET_XCRS / KVM_SET_XCRS): the extended control registers (XCR0
 * selects the XSAVE features the guest enabled). 392 bytes:
 * <pre>
 *   0 nr_xcrs (u32)   4 flags (u32)
 *   8 xcrs[16]: struct kvm_xcr, 16 bytes each = { 0 xcr (u32), 4 reserved (u32), 8 value (u64) }
 * 264 padding[16] (u64)
 * </pre>
 */
public final class KvmXcrs extends KvmStruct {
    public static final int SIZE = 392;
    public static final int NR_XCRS_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int XCRS_OFFSET = 8;
    /** {@code sizeof(struct kvm_xcr)}. */
    public static final int XCR_SIZE = 16;
    public static final int XCR_XCR_OFFSET = 0;
    public static final int XCR_VALUE_OFFSET = 8;
    /** KVM_MAX_XCRS: entries in {@code xcrs}. */
    public static final int MAX_XCRS = 16;

    public KvmXcrs() {
        super(SIZE);
    }

    public int nrXcrs() {
        return u32(NR_XCRS_OFFSET);
    }

    public void setNrXcrs(int n) {
        u32(NR_XCRS_OFFSET, checkCount(n));
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    /** The XCR number of entry {@code i} (0 for XCR0). */
    public int xcr(int i) {
        return u32(XCRS_OFFSET + XCR_SIZE * checkIndex(i, MAX_XCRS, "xcrs") + XCR_XCR_OFFSET);
    }

    public long value(int i) {
        return u64(XCRS_OFFSET + XCR_SIZE * checkIndex(i, MAX_XCRS, "xcrs") + XCR_VALUE_OFFSET);
    }

    public void set(int i, int xcr, long value) {
        int at = XCRS_OFFSET + XCR_SIZE * checkIndex(i, MAX_XCRS, "xcrs");
        u32(at + XCR_XCR_OFFSET, xcr);
        u32(at + 4, 0);
        u64(at + XCR_VALUE_OFFSET, value);
    }

    private static int checkCount(int n) {
        if (n < 0 || n > MAX_XCRS) {
            throw new IllegalArgumentException("nr_xcrs " + n + " outside 0.." + MAX_XCRS);
        }
        return n;
    }
}
