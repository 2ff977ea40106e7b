package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_pit_config} (KVM_CREATE_PIT2 on the VM fd): 64 bytes,
 * {@code 0 flags (u32)  4 pad[15] (u32, zero)}. {@code flags}: KVM_PIT_SPEAKER_DUMMY gives
 * port 0x61 a dummy speaker inside KVM, so the guest's PIT channel 2 polling never exits.
 */
public final class KvmPitConfig extends KvmStruct {
    public static final int SIZE = 64;
    public static final int FLAGS_OFFSET = 0;
    public static final int PAD_OFFSET = 4;

    public KvmPitConfig() {
        super(SIZE);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public void setFlags(int v) {
        clear();
        u32(FLAGS_OFFSET, v);
    }
}
