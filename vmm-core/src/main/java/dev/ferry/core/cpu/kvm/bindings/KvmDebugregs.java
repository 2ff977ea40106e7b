package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_debugregs} (KVM_GET_DEBUGREGS / KVM_SET_DEBUGREGS). 128 bytes:
 * <pre>
 *  0 db[4] (DR0..DR3, u64)  32 dr6 (u64)  40 dr7 (u64)  48 flags (u64)  56 reserved[9] (u64)
 * </pre>
 */
public final class KvmDebugregs extends KvmStruct {
    public static final int SIZE = 128;
    public static final int DB_OFFSET = 0;
    public static final int DR6_OFFSET = 32;
    public static final int DR7_OFFSET = 40;
    public static final int FLAGS_OFFSET = 48;

    public KvmDebugregs() {
        super(SIZE);
    }

    /** DR{@code i}, 0..3. */
    public long db(int i) {
        return u64(DB_OFFSET + 8 * checkIndex(i, 4, "db"));
    }

    public void setDb(int i, long v) {
        u64(DB_OFFSET + 8 * checkIndex(i, 4, "db"), v);
    }

    public long dr6() {
        return u64(DR6_OFFSET);
    }

    public void setDr6(long v) {
        u64(DR6_OFFSET, v);
    }

    public long dr7() {
        return u64(DR7_OFFSET);
    }

    public void setDr7(long v) {
        u64(DR7_OFFSET, v);
    }

    public long flags() {
        return u64(FLAGS_OFFSET);
    }
}
