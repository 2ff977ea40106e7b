package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_segment}: one segment register as KVM presents it, the descriptor already
 * unpacked (24 bytes, inside {@link KvmSregs}):
 * <pre>
 *  0            8        12        14   15      16  17 18 19 20 21  22       23
 * +------------+--------+---------+----+-------+---+--+--+--+--+---+--------+-------+
 * | base (u64) | limit  | selector|type|present|dpl|db|s |l |g |avl|unusable|padding|
 * +------------+--------+---------+----+-------+---+--+--+--+--+---+--------+-------+
 * </pre>
 * {@code limit} is in bytes (KVM expands the G bit); {@code type} is the descriptor's 4-bit type
 * (code: 8..15, data: 0..7; 11 = execute/read accessed, 3 = read/write accessed, TR: 11 = busy
 * 64-bit TSS).
 *
 * <p>A view into its {@link KvmSregs}: valid as long as that struct is open; allocates nothing.
 */
public final class KvmSegment {
    public static final int SIZE = 24;
    public static final int BASE_OFFSET = 0;
    public static final int LIMIT_OFFSET = 8;
    public static final int SELECTOR_OFFSET = 12;
    public static final int TYPE_OFFSET = 14;
    public static final int PRESENT_OFFSET = 15;
    public static final int DPL_OFFSET = 16;
    public static final int DB_OFFSET = 17;
    public static final int S_OFFSET = 18;
    public static final int L_OFFSET = 19;
    public static final int G_OFFSET = 20;
    public static final int AVL_OFFSET = 21;
    public static final int UNUSABLE_OFFSET = 22;

    private final KvmStruct owner;
    private final int at;
    private final String name;

    KvmSegment(KvmStruct owner, int at, String name) {
        this.owner = owner;
        this.at = at;
        this.name = name;
    }

    /** {@code "cs"}, {@code "tr"}, ... */
    public String name() {
        return name;
    }

    public long base() {
        return owner.u64(at + BASE_OFFSET);
    }

    public void setBase(long v) {
        owner.u64(at + BASE_OFFSET, v);
    }

    /** The limit in bytes (unsigned 32-bit). */
    public long limit() {
        return Integer.toUnsignedLong(owner.u32(at + LIMIT_OFFSET));
    }

    public void setLimit(long v) {
        owner.u32(at + LIMIT_OFFSET, (int) v);
    }

    public int selector() {
        return owner.u16(at + SELECTOR_OFFSET);
    }

    public void setSelector(int v) {
        owner.u16(at + SELECTOR_OFFSET, v);
    }

    public int type() {
        return owner.u8(at + TYPE_OFFSET);
    }

    public void setType(int v) {
        owner.u8(at + TYPE_OFFSET, v);
    }

    public boolean present() {
        return owner.u8(at + PRESENT_OFFSET) != 0;
    }

    public void setPresent(boolean v) {
        owner.u8(at + PRESENT_OFFSET, v ? 1 : 0);
    }

    public int dpl() {
        return owner.u8(at + DPL_OFFSET);
    }

    public void setDpl(int v) {
        owner.u8(at + DPL_OFFSET, v);
    }

    /** D/B: default operation size 32 bit (must be clear for a 64-bit code segment). */
    public boolean db() {
        return owner.u8(at + DB_OFFSET) != 0;
    }

    public void setDb(boolean v) {
        owner.u8(at + DB_OFFSET, v ? 1 : 0);
    }

    /** S: code or data segment (clear for system segments: TSS, LDT). */
    public boolean s() {
        return owner.u8(at + S_OFFSET) != 0;
    }

    public void setS(boolean v) {
        owner.u8(at + S_OFFSET, v ? 1 : 0);
    }

    /** L: 64-bit code segment. */
    public boolean l() {
        return owner.u8(at + L_OFFSET) != 0;
    }

    public void setL(boolean v) {
        owner.u8(at + L_OFFSET, v ? 1 : 0);
    }

    /** G: limit granularity 4 KiB. */
    public boolean g() {
        return owner.u8(at + G_OFFSET) != 0;
    }

    public void setG(boolean v) {
        owner.u8(at + G_OFFSET, v ? 1 : 0);
    }

    public boolean avl() {
        return owner.u8(at + AVL_OFFSET) != 0;
    }

    public void setAvl(boolean v) {
        owner.u8(at + AVL_OFFSET, v ? 1 : 0);
    }

    public boolean unusable() {
        return owner.u8(at + UNUSABLE_OFFSET) != 0;
    }

    public void setUnusable(boolean v) {
        owner.u8(at + UNUSABLE_OFFSET, v ? 1 : 0);
    }

    /**
     * Sets every field at once, the way a descriptor is written in a GDT: {@code base},
     * {@code limit} in bytes, {@code selector}, {@code type}, DPL 0, present and usable, and the
     * S, D/B, L and G bits.
     */
    public void set(long base, long limit, int selector, int type, boolean s, boolean db, boolean l, boolean g) {
        setBase(base);
        setLimit(limit);
        setSelector(selector);
        setType(type);
        setPresent(true);
        setDpl(0);
        setDb(db);
        setS(s);
        setL(l);
        setG(g);
        setAvl(false);
        setUnusable(false);
    }

    @Override
    public String toString() {
        return String.format("%s=%04x base=%x limit=%x type=%d%s%s%s%s dpl=%d", name, selector(), base(), limit(),
                type(), present() ? " p" : "", s() ? " s" : "", l() ? " l" : "", db() ? " db" : "", dpl());
    }
}
