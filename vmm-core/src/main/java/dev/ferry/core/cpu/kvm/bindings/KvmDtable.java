package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_dtable}: a descriptor-table register (GDTR, IDTR), 16 bytes inside
 * {@link KvmSregs}:
 * <pre>
 *  0            8            10                 16
 * +------------+------------+------------------+
 * | base (u64) | limit (u16)| padding[3] (u16) |
 * +------------+------------+------------------+
 * </pre>
 * A view into its {@link KvmSregs}: valid as long as that struct is open.
 */
public final class KvmDtable {
    public static final int SIZE = 16;
    public static final int BASE_OFFSET = 0;
    public static final int LIMIT_OFFSET = 8;

    private final KvmStruct owner;
    private final int at;
    private final String name;

    KvmDtable(KvmStruct owner, int at, String name) {
        this.owner = owner;
        this.at = at;
        this.name = name;
    }

    public String name() {
        return name;
    }

    public long base() {
        return owner.u64(at + BASE_OFFSET);
    }

    public void setBase(long v) {
        owner.u64(at + BASE_OFFSET, v);
    }

    public int limit() {
        return owner.u16(at + LIMIT_OFFSET);
    }

    public void setLimit(int v) {
        owner.u16(at + LIMIT_OFFSET, v);
    }

    @Override
    public String toString() {
        return String.format("%s base=%x limit=%x", name, base(), limit());
    }
}
