package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_fpu} (KVM_GET_FPU / KVM_SET_FPU): the x87 and SSE state in FXSAVE terms.
 * 416 bytes:
 * <pre>
 *   0 fpr[8][16]     x87 registers ST0..ST7, 10 significant bytes each
 * 128 fcw (u16)  130 fsw (u16)  132 ftwx (u8, FXSAVE abridged tag)  133 pad1
 * 134 last_opcode (u16)  136 last_ip (u64)  144 last_dp (u64)
 * 152 xmm[16][16]    XMM0..XMM15
 * 408 mxcsr (u32)  412 pad2
 * </pre>
 * With KVM_CAP_XSAVE, {@link KvmXsave} carries the same state and more (AVX); migration saves
 * that instead and keeps this for hosts without XSAVE.
 */
public final class KvmFpu extends KvmStruct {
    public static final int SIZE = 416;
    public static final int FPR_OFFSET = 0;
    public static final int FCW_OFFSET = 128;
    public static final int FSW_OFFSET = 130;
    public static final int FTWX_OFFSET = 132;
    public static final int LAST_OPCODE_OFFSET = 134;
    public static final int LAST_IP_OFFSET = 136;
    public static final int LAST_DP_OFFSET = 144;
    public static final int XMM_OFFSET = 152;
    public static final int MXCSR_OFFSET = 408;

    public KvmFpu() {
        super(SIZE);
    }

    public int fcw() {
        return u16(FCW_OFFSET);
    }

    public void setFcw(int v) {
        u16(FCW_OFFSET, v);
    }

    public int fsw() {
        return u16(FSW_OFFSET);
    }

    public void setFsw(int v) {
        u16(FSW_OFFSET, v);
    }

    public int ftwx() {
        return u8(FTWX_OFFSET);
    }

    public void setFtwx(int v) {
        u8(FTWX_OFFSET, v);
    }

    public int lastOpcode() {
        return u16(LAST_OPCODE_OFFSET);
    }

    public long lastIp() {
        return u64(LAST_IP_OFFSET);
    }

    public long lastDp() {
        return u64(LAST_DP_OFFSET);
    }

    public int mxcsr() {
        return u32(MXCSR_OFFSET);
    }

    public void setMxcsr(int v) {
        u32(MXCSR_OFFSET, v);
    }

    /** Low 64 bits of XMM{@code n}. */
    public long xmmLow(int n) {
        return u64(XMM_OFFSET + 16 * checkIndex(n, 16, "xmm"));
    }

    /** High 64 bits of XMM{@code n}. */
    public long xmmHigh(int n) {
        return u64(XMM_OFFSET + 16 * checkIndex(n, 16, "xmm") + 8);
    }

    public void setXmm(int n, long low, long high) {
        int at = XMM_OFFSET + 16 * checkIndex(n, 16, "xmm");
        u64(at, low);
        u64(at + 8, high);
    }

    /** The 64-bit significand of ST{@code n} (bytes 0..7 of its 16-byte slot). */
    public long fprMantissa(int n) {
        return u64(FPR_OFFSET + 16 * checkIndex(n, 8, "fpr"));
    }

    /** Sign and exponent of ST{@code n} (bytes 8..9). */
    public int fprExponent(int n) {
        return u16(FPR_OFFSET + 16 * checkIndex(n, 8, "fpr") + 8);
    }
}
