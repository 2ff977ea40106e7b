package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_enable_cap} (KVM_ENABLE_CAP on a VM or vCPU fd). 104 bytes:
 * <pre>
 *  0 cap (u32)  4 flags (u32)  8 args[4] (u64)  40 pad[64]
 * </pre>
 */
public final class KvmEnableCap extends KvmStruct {
    public static final int SIZE = 104;
    public static final int CAP_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int ARGS_OFFSET = 8;
    /** Entries in {@code args}. */
    public static final int ARGS_COUNT = 4;

    public KvmEnableCap() {
        super(SIZE);
    }

    /** Clears the struct and sets {@code cap}, {@code flags} and {@code args[0]}. */
    public void set(int cap, int flags, long arg0) {
        clear();
        u32(CAP_OFFSET, cap);
        u32(FLAGS_OFFSET, flags);
        u64(ARGS_OFFSET, arg0);
    }

    public int cap() {
        return u32(CAP_OFFSET);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public long arg(int i) {
        return u64(ARGS_OFFSET + 8 * checkIndex(i, ARGS_COUNT, "args"));
    }

    public void setArg(int i, long v) {
        u64(ARGS_OFFSET + 8 * checkIndex(i, ARGS_COUNT, "args"), v);
    }
}
