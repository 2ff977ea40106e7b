package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_mp_state} (KVM_GET_MP_STATE / KVM_SET_MP_STATE): 4 bytes,
 * {@code 0 mp_state (u32)}, one of {@code KvmConstants.KVM_MP_STATE_*}.
 */
public final class KvmMpState extends KvmStruct {
    public static final int SIZE = 4;
    public static final int MP_STATE_OFFSET = 0;

    public KvmMpState() {
        super(SIZE);
    }

    public int mpState() {
        return u32(MP_STATE_OFFSET);
    }

    public void setMpState(int v) {
        u32(MP_STATE_OFFSET, v);
    }
}
