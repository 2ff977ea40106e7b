package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_pit_state2} (KVM_GET_PIT2 / KVM_SET_PIT2, after KVM_CREATE_PIT2): the
 * in-kernel i8254's three channels. 112 bytes:
 * <pre>
 *  0 channels[3] (struct kvm_pit_channel_state, 24 bytes each; opaque)
 * 72 flags (u32: KVM_PIT_FLAGS_HPET_LEGACY, KVM_PIT_FLAGS_SPEAKER_DATA_ON)
 * 76 reserved[9] (u32)
 * </pre>
 * Opaque to migration, which copies it whole; only {@code flags} has an accessor.
 */
public final class KvmPitState2 extends KvmStruct {
    public static final int SIZE = 112;
    public static final int CHANNELS_OFFSET = 0;
    public static final int FLAGS_OFFSET = 72;
    public static final int RESERVED_OFFSET = 76;

    public KvmPitState2() {
        super(SIZE);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public void setFlags(int v) {
        u32(FLAGS_OFFSET, v);
    }
}
