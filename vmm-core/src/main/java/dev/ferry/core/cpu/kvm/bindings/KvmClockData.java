package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_clock_data} (KVM_GET_CLOCK / KVM_SET_CLOCK on the VM fd): the VM's kvmclock
 * in nanoseconds. 48 bytes:
 * <pre>
 *  0 clock (u64)  8 flags (u32)  12 pad0 (u32)  16 realtime (u64)  24 host_tsc (u64)  32 pad[4] (u32)
 * </pre>
 * GET fills {@code flags} with KVM_CLOCK_TSC_STABLE and, on newer kernels, KVM_CLOCK_REALTIME /
 * KVM_CLOCK_HOST_TSC with the matching fields. SET uses {@code clock}, and {@code realtime} only
 * when KVM_CLOCK_REALTIME is set in {@code flags} (then KVM adds the time elapsed since).
 */
public final class KvmClockData extends KvmStruct {
    public static final int SIZE = 48;
    public static final int CLOCK_OFFSET = 0;
    public static final int FLAGS_OFFSET = 8;
    public static final int REALTIME_OFFSET = 16;
    public static final int HOST_TSC_OFFSET = 24;

    public KvmClockData() {
        super(SIZE);
    }

    public long clock() {
        return u64(CLOCK_OFFSET);
    }

    public void setClock(long v) {
        u64(CLOCK_OFFSET, v);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public void setFlags(int v) {
        u32(FLAGS_OFFSET, v);
    }

    public long realtime() {
        return u64(REALTIME_OFFSET);
    }

    public void setRealtime(long v) {
        u64(REALTIME_OFFSET, v);
    }

    public long hostTsc() {
        return u64(HOST_TSC_OFFSET);
    }
}
