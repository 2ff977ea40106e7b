package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_sregs} (KVM_GET_SREGS / KVM_SET_SREGS): segment registers, descriptor
 * tables, control registers, EFER, the APIC base and the pending-interrupt bitmap. 312 bytes:
 * <pre>
 *   0 cs   24 ds   48 es   72 fs   96 gs  120 ss  144 tr  168 ldt   (struct kvm_segment, 24 each)
 * 192 gdt 208 idt                                                   (struct kvm_dtable, 16 each)
 * 224 cr0 232 cr2 240 cr3 248 cr4 256 cr8 264 efer 272 apic_base   (u64)
 * 280 interrupt_bitmap[4]                                           (u64, one bit per vector)
 * </pre>
 * The segment and table accessors are views made once with this object.
 */
public final class KvmSregs extends KvmStruct {
    public static final int SIZE = 312;
    public static final int CS_OFFSET = 0;
    public static final int DS_OFFSET = 24;
    public static final int ES_OFFSET = 48;
    public static final int FS_OFFSET = 72;
    public static final int GS_OFFSET = 96;
    public static final int SS_OFFSET = 120;
    public static final int TR_OFFSET = 144;
    public static final int LDT_OFFSET = 168;
    public static final int GDT_OFFSET = 192;
    public static final int IDT_OFFSET = 208;
    public static final int CR0_OFFSET = 224;
    public static final int CR2_OFFSET = 232;
    public static final int CR3_OFFSET = 240;
    public static final int CR4_OFFSET = 248;
    public static final int CR8_OFFSET = 256;
    public static final int EFER_OFFSET = 264;
    public static final int APIC_BASE_OFFSET = 272;
    public static final int INTERRUPT_BITMAP_OFFSET = 280;
    /** u64 words in {@code interrupt_bitmap}: (KVM_NR_INTERRUPTS + 63) / 64. */
    public static final int INTERRUPT_BITMAP_WORDS = 4;

    private final KvmSegment cs = new KvmSegment(this, CS_OFFSET, "cs");
    private final KvmSegment ds = new KvmSegment(this, DS_OFFSET, "ds");
    private final KvmSegment es = new KvmSegment(this, ES_OFFSET, "es");
    private final KvmSegment fs = new KvmSegment(this, FS_OFFSET, "fs");
    private final KvmSegment gs = new KvmSegment(this, GS_OFFSET, "gs");
    private final KvmSegment ss = new KvmSegment(this, SS_OFFSET, "ss");
    private final KvmSegment tr = new KvmSegment(this, TR_OFFSET, "tr");
    private final KvmSegment ldt = new KvmSegment(this, LDT_OFFSET, "ldt");
    private final KvmDtable gdt = new KvmDtable(this, GDT_OFFSET, "gdt");
    private final KvmDtable idt = new KvmDtable(this, IDT_OFFSET, "idt");

    public KvmSregs() {
        super(SIZE);
    }

    public KvmSegment cs() {
        return cs;
    }

    public KvmSegment ds() {
        return ds;
    }

    public KvmSegment es() {
        return es;
    }

    public KvmSegment fs() {
        return fs;
    }

    public KvmSegment gs() {
        return gs;
    }

    public KvmSegment ss() {
        return ss;
    }

    public KvmSegment tr() {
        return tr;
    }

    public KvmSegment ldt() {
        return ldt;
    }

    public KvmDtable gdt() {
        return gdt;
    }

    public KvmDtable idt() {
        return idt;
    }

    public long cr0() {
        return u64(CR0_OFFSET);
    }

    public void setCr0(long v) {
        u64(CR0_OFFSET, v);
    }

    public long cr2() {
        return u64(CR2_OFFSET);
    }

    public void setCr2(long v) {
        u64(CR2_OFFSET, v);
    }

    public long cr3() {
        return u64(CR3_OFFSET);
    }

    public void setCr3(long v) {
        u64(CR3_OFFSET, v);
    }

    public long cr4() {
        return u64(CR4_OFFSET);
    }

    public void setCr4(long v) {
        u64(CR4_OFFSET, v);
    }

    public long cr8() {
        return u64(CR8_OFFSET);
    }

    public void setCr8(long v) {
        u64(CR8_OFFSET, v);
    }

    public long efer() {
        return u64(EFER_OFFSET);
    }

    public void setEfer(long v) {
        u64(EFER_OFFSET, v);
    }

    public long apicBase() {
        return u64(APIC_BASE_OFFSET);
    }

    public void setApicBase(long v) {
        u64(APIC_BASE_OFFSET, v);
    }

    /** Word {@code i} (vectors {@code 64i..64i+63}) of the pending external interrupt bitmap. */
    public long interruptBitmap(int i) {
        return u64(INTERRUPT_BITMAP_OFFSET + 8 * checkIndex(i, INTERRUPT_BITMAP_WORDS, "interrupt_bitmap"));
    }

    public void setInterruptBitmap(int i, long v) {
        u64(INTERRUPT_BITMAP_OFFSET + 8 * checkIndex(i, INTERRUPT_BITMAP_WORDS, "interrupt_bitmap"), v);
    }
}
