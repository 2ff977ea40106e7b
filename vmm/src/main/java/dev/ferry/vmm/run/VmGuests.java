package dev.ferry.vmm.run;

import dev.ferry.core.cpu.guest.GuestProgram;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.vmm.config.VmConfig;

import java.util.Optional;
import java.util.function.Consumer;

/**
 * Picks the engine a config asks for: {@code soft}; {@code kvm} (refused with the reason when it
 * cannot run here); {@code auto} — KVM when /dev/kvm works, the built-in guest program was built
 * and the VM has one vCPU, otherwise soft with a one-line notice.
 */
final class VmGuests {
    private VmGuests() {
    }

    static VmGuest create(VmConfig config, Consumer<String> notice) throws VmmException {
        Optional<String> kvmMissing = kvmMissing(config);
        if (kvmMissing.isEmpty() && hasVirtioDevices(config)) {
            kvmMissing = Optional.of("the config has virtio devices, and the KVM engine's in-kernel irqchip and "
                    + "guest virtio driver are not built yet");
        }
        return switch (config.engine()) {
            case SOFT -> new SoftGuest(config);
            case KVM -> {
                if (kvmMissing.isPresent()) {
                    throw VmmException.generic("engine kvm is not available: " + kvmMissing.get());
                }
                yield new KvmGuest(config);
            }
            case AUTO -> {
                if (kvmMissing.isPresent()) {
                    notice.accept("engine auto: using the soft engine (" + kvmMissing.get() + ")");
                    yield new SoftGuest(config);
                }
                yield new KvmGuest(config);
            }
        };
    }

    /** Devices of registered kinds (virtio-blk, ...): they need an interrupt controller and a guest driver. */
    static boolean hasVirtioDevices(VmConfig config) {
        return config.devices().stream().anyMatch(d -> dev.ferry.vmm.config.DeviceKinds.find(d.kind()).isPresent());
    }

    /** Why the KVM engine cannot run this VM here, or empty. */
    static Optional<String> kvmMissing(VmConfig config) {
        Optional<String> kvm = Kvm.available();
        if (kvm.isPresent()) {
            return Optional.of("KVM: " + kvm.get());
        }
        if (GuestProgram.load().isEmpty()) {
            return Optional.of(GuestProgram.NOT_BUILT);
        }
        if (config.vcpus() != 1) {
            return Optional.of("the built-in KVM guest runs on one vCPU and the config asks for " + config.vcpus());
        }
        return Optional.empty();
    }
}
