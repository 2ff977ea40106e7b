package dev.ferry.core.cpu.guest;

/**
 * The vCPU state before ferry-guest's first instruction, as the KVM engine sets it with
 * KVM_SET_SREGS and KVM_SET_REGS. Every general register not named here is 0. The segments
 * repeat the GDT that {@link GuestLayout#prepare} writes, so a segment reload would load the
 * same values. The IDT is empty (limit 0), so any exception is a triple fault, which KVM reports
 * as KVM_EXIT_SHUTDOWN. APIC base, CR2 and CR8 are left as KVM has them.
 *
 * @param ring     the privilege the program runs with
 * @param rip      the image's entry point
 * @param rsp      {@link GuestLayout#STACK_TOP_GPA}
 * @param rflags   {@link GuestLayout#RFLAGS} (IOPL 3, interrupts off)
 * @param cr0      {@link GuestLayout#CR0}
 * @param cr3      the PML4's GPA ({@link GuestLayout#PML4_GPA})
 * @param cr4      {@link GuestLayout#CR4}
 * @param efer     {@link GuestLayout#EFER}
 * @param cs       the ring's code segment ({@link Segment#USER_CODE} or {@link Segment#KERNEL_CODE})
 * @param data     the ring's data segment, for DS, ES, FS, GS and SS alike
 * @param tr       {@link Segment#TSS}
 * @param ldt      {@link Segment#UNUSABLE_LDT}
 * @param gdtBase  {@link GuestLayout#GDT_GPA}
 * @param gdtLimit {@code 8 * GDT_ENTRIES - 1}
 * @param idtBase  0
 * @param idtLimit 0
 */
public record GuestBootState(Ring ring, long rip, long rsp, long rflags, long cr0, long cr3, long cr4, long efer,
                             Segment cs, Segment data, Segment tr, Segment ldt, long gdtBase, int gdtLimit,
                             long idtBase, int idtLimit) {

    /** The privilege level the program runs at. */
    public enum Ring {
        /** CPL 0. The program halts after DONE, but nested page-table-based hypervisors emulate this ring. */
        KERNEL,
        /** CPL 3, the default. It runs natively everywhere; after DONE the program repeats its status OUT. */
        USER
    }

    /** 64-bit long mode with paging at {@code cr3}, entering at {@code rip} with stack {@code rsp}. */
    public static GuestBootState longMode(Ring ring, long cr3, long rip, long rsp) {
        boolean user = ring == Ring.USER;
        return new GuestBootState(ring, rip, rsp, GuestLayout.RFLAGS, GuestLayout.CR0, cr3, GuestLayout.CR4,
                GuestLayout.EFER, user ? Segment.USER_CODE : Segment.KERNEL_CODE,
                user ? Segment.USER_DATA : Segment.KERNEL_DATA, Segment.TSS, Segment.UNUSABLE_LDT, GuestLayout.GDT_GPA,
                8 * GuestLayout.GDT_ENTRIES - 1, 0, 0);
    }

    /**
     * One segment register as {@code struct kvm_segment} holds it. {@code limit} is in bytes
     * (already scaled by the granularity bit), as KVM wants it; {@link #descriptor()} encodes the
     * GDT form.
     */
    public record Segment(long base, int limit, int selector, int type, boolean present, int dpl, boolean db,
                          boolean s, boolean l, boolean g, boolean avl, boolean unusable) {
        /** Execute/read code, accessed; 64-bit (L), 4 GiB limit, DPL 0. */
        public static final Segment KERNEL_CODE = new Segment(0, 0xFFFF_FFFF, GuestLayout.KERNEL_CODE_SELECTOR, 0xB,
                true, 0, false, true, true, true, false, false);
        /** Read/write data, accessed; 32-bit default (DB), 4 GiB limit, DPL 0. */
        public static final Segment KERNEL_DATA = new Segment(0, 0xFFFF_FFFF, GuestLayout.KERNEL_DATA_SELECTOR, 0x3,
                true, 0, true, true, false, true, false, false);
        /** As {@link #KERNEL_CODE} with DPL 3. */
        public static final Segment USER_CODE = new Segment(0, 0xFFFF_FFFF, GuestLayout.USER_CODE_SELECTOR, 0xB,
                true, 3, false, true, true, true, false, false);
        /** As {@link #KERNEL_DATA} with DPL 3. */
        public static final Segment USER_DATA = new Segment(0, 0xFFFF_FFFF, GuestLayout.USER_DATA_SELECTOR, 0x3,
                true, 3, true, true, false, true, false, false);
        /** Busy 64-bit TSS (type 11, as VMX requires of TR in long mode). */
        public static final Segment TSS = new Segment(GuestLayout.TSS_GPA, GuestLayout.TSS_LIMIT,
                GuestLayout.TSS_SELECTOR, 0xB, true, 0, false, false, false, false, false, false);
        /** No LDT. */
        public static final Segment UNUSABLE_LDT = new Segment(0, 0, 0, 0x2, false, 0, false, false, false, false,
                false, true);

        /**
         * The low eight bytes of this segment's GDT descriptor. For a system segment (the TSS)
         * the high eight bytes hold {@code base >>> 32}.
         */
        public long descriptor() {
            long rawLimit = g ? Integer.toUnsignedLong(limit) >>> 12 : Integer.toUnsignedLong(limit);
            long access = type | (s ? 0x10 : 0) | (dpl & 3) << 5 | (present ? 0x80 : 0);
            long flags = (avl ? 1 : 0) | (l ? 2 : 0) | (db ? 4 : 0) | (g ? 8 : 0);
            return (rawLimit & 0xFFFF) | (base & 0xFF_FFFFL) << 16 | access << 40 | (rawLimit >>> 16 & 0xF) << 48
                    | flags << 52 | (base >>> 24 & 0xFF) << 56;
        }
    }
}
