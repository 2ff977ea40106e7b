package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_xsave} (KVM_GET_XSAVE / KVM_SET_XSAVE): the guest's extended state as an
 * XSAVE image, {@code __u32 region[1024]} = 4096 bytes. Treated as an opaque buffer: migration
 * copies it whole. The image follows the XSAVE standard format, whose fixed parts are:
 * <pre>
 *    0 legacy region (FXSAVE layout, 512 bytes): 0 fcw, 2 fsw, 4 ftw, 24 mxcsr, 32 st0.., 160 xmm0..
 *  512 XSAVE header: 512 xstate_bv (u64), 520 xcomp_bv (u64), 24 reserved bytes
 *  576 extended components at the offsets the host's CPUID leaf 0xD gives (AVX at 576 ...)
 * </pre>
 * A host with dynamically enabled features (AMX, via arch_prctl) needs more than 4096 bytes
 * (KVM_CAP_XSAVE2 and KVM_GET_XSAVE2); Ferry does not enable them, so 4096 is the whole state.
 */
public final class KvmXsave extends KvmStruct {
    public static final int SIZE = 4096;
    public static final int REGION_OFFSET = 0;

    private static final int LEGACY_FCW = 0;
    private static final int LEGACY_MXCSR = 24;
    private static final int LEGACY_XMM = 160;
    private static final int HEADER_XSTATE_BV = 512;
    private static final int HEADER_XCOMP_BV = 520;

    public KvmXsave() {
        super(SIZE);
    }

    /** u32 {@code region[i]}. */
    public int region(int i) {
        return u32(REGION_OFFSET + 4 * checkIndex(i, SIZE / 4, "region"));
    }

    public void setRegion(int i, int v) {
        u32(REGION_OFFSET + 4 * checkIndex(i, SIZE / 4, "region"), v);
    }

    /** x87 control word from the legacy region. */
    public int fcw() {
        return u16(LEGACY_FCW);
    }

    /** MXCSR from the legacy region. */
    public int mxcsr() {
        return u32(LEGACY_MXCSR);
    }

    public void setMxcsr(int v) {
        u32(LEGACY_MXCSR, v);
    }

    /** Low 64 bits of XMM{@code n} from the legacy region. */
    public long xmmLow(int n) {
        return u64(LEGACY_XMM + 16 * checkIndex(n, 16, "xmm"));
    }

    /**
     * Sets XMM{@code n} in the legacy region. It only counts when XSTATE_BV has the SSE bit
     * (1): otherwise XRSTOR, and KVM's own copy, take the SSE state as its init value (zeros).
     */
    public void setXmm(int n, long low, long high) {
        int at = LEGACY_XMM + 16 * checkIndex(n, 16, "xmm");
        u64(at, low);
        u64(at + 8, high);
    }

    /** XSTATE_BV: the state components the image holds (bit 0 x87, 1 SSE, 2 AVX, ...). */
    public long xstateBv() {
        return u64(HEADER_XSTATE_BV);
    }

    public void setXstateBv(long v) {
        u64(HEADER_XSTATE_BV, v);
    }

    /** XCOMP_BV: zero for the standard (uncompacted) format KVM uses here. */
    public long xcompBv() {
        return u64(HEADER_XCOMP_BV);
    }
}
