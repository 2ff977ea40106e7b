package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_regs} (KVM_GET_REGS / KVM_SET_REGS): the general-purpose registers, RIP and
 * RFLAGS. 18 little-endian u64, 144 bytes:
 * <pre>
 *   0 rax   8 rbx  16 rcx  24 rdx  32 rsi  40 rdi  48 rsp  56 rbp
 *  64 r8   72 r9   80 r10  88 r11  96 r12 104 r13 112 r14 120 r15
 * 128 rip 136 rflags
 * </pre>
 */
public final class KvmRegs extends KvmStruct {
    public static final int SIZE = 144;
    public static final int RAX_OFFSET = 0;
    public static final int RBX_OFFSET = 8;
    public static final int RCX_OFFSET = 16;
    public static final int RDX_OFFSET = 24;
    public static final int RSI_OFFSET = 32;
    public static final int RDI_OFFSET = 40;
    public static final int RSP_OFFSET = 48;
    public static final int RBP_OFFSET = 56;
    public static final int R8_OFFSET = 64;
    public static final int R9_OFFSET = 72;
    public static final int R10_OFFSET = 80;
    public static final int R11_OFFSET = 88;
    public static final int R12_OFFSET = 96;
    public static final int R13_OFFSET = 104;
    public static final int R14_OFFSET = 112;
    public static final int R15_OFFSET = 120;
    public static final int RIP_OFFSET = 128;
    public static final int RFLAGS_OFFSET = 136;

    private static final int[] GPR_OFFSETS = {RAX_OFFSET, RCX_OFFSET, RDX_OFFSET, RBX_OFFSET, RSP_OFFSET, RBP_OFFSET,
        RSI_OFFSET, RDI_OFFSET, R8_OFFSET, R9_OFFSET, R10_OFFSET, R11_OFFSET, R12_OFFSET, R13_OFFSET, R14_OFFSET,
        R15_OFFSET};

    public KvmRegs() {
        super(SIZE);
    }

    public long rax() {
        return u64(RAX_OFFSET);
    }

    public void setRax(long v) {
        u64(RAX_OFFSET, v);
    }

    public long rbx() {
        return u64(RBX_OFFSET);
    }

    public void setRbx(long v) {
        u64(RBX_OFFSET, v);
    }

    public long rcx() {
        return u64(RCX_OFFSET);
    }

    public void setRcx(long v) {
        u64(RCX_OFFSET, v);
    }

    public long rdx() {
        return u64(RDX_OFFSET);
    }

    public void setRdx(long v) {
        u64(RDX_OFFSET, v);
    }

    public long rsi() {
        return u64(RSI_OFFSET);
    }

    public void setRsi(long v) {
        u64(RSI_OFFSET, v);
    }

    public long rdi() {
        return u64(RDI_OFFSET);
    }

    public void setRdi(long v) {
        u64(RDI_OFFSET, v);
    }

    public long rsp() {
        return u64(RSP_OFFSET);
    }

    public void setRsp(long v) {
        u64(RSP_OFFSET, v);
    }

    public long rbp() {
        return u64(RBP_OFFSET);
    }

    public void setRbp(long v) {
        u64(RBP_OFFSET, v);
    }

    public long r8() {
        return u64(R8_OFFSET);
    }

    public void setR8(long v) {
        u64(R8_OFFSET, v);
    }

    public long r9() {
        return u64(R9_OFFSET);
    }

    public void setR9(long v) {
        u64(R9_OFFSET, v);
    }

    public long r10() {
        return u64(R10_OFFSET);
    }

    public void setR10(long v) {
        u64(R10_OFFSET, v);
    }

    public long r11() {
        return u64(R11_OFFSET);
    }

    public void setR11(long v) {
        u64(R11_OFFSET, v);
    }

    public long r12() {
        return u64(R12_OFFSET);
    }

    public void setR12(long v) {
        u64(R12_OFFSET, v);
    }

    public long r13() {
        return u64(R13_OFFSET);
    }

    public void setR13(long v) {
        u64(R13_OFFSET, v);
    }

    public long r14() {
        return u64(R14_OFFSET);
    }

    public void setR14(long v) {
        u64(R14_OFFSET, v);
    }

    public long r15() {
        return u64(R15_OFFSET);
    }

    public void setR15(long v) {
        u64(R15_OFFSET, v);
    }

    public long rip() {
        return u64(RIP_OFFSET);
    }

    public void setRip(long v) {
        u64(RIP_OFFSET, v);
    }

    public long rflags() {
        return u64(RFLAGS_OFFSET);
    }

    public void setRflags(long v) {
        u64(RFLAGS_OFFSET, v);
    }

    /** General-purpose register {@code n} in the encoding's order (0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, ...). */
    public long gpr(int n) {
        return u64(GPR_OFFSETS[checkIndex(n, 16, "gpr")]);
    }

    public void setGpr(int n, long v) {
        u64(GPR_OFFSETS[checkIndex(n, 16, "gpr")], v);
    }
}
