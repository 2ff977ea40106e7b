package dev.ferry.vfio.check;

import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.vfio.emulated.EmulatedNicVf;
import dev.ferry.vfio.emulated.NicDriver;
import dev.ferry.vfio.emulated.NicRegisters;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;

import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Emulated VFs of one {@link EmulatedVfSpec}: each {@link #open()} builds a new device over its
 * own small guest memory, mapped for DMA at IOVA = GPA.
 *
 * <p>{@link #openReplayable()} builds the same device with the timer-driven churn off
 * ({@code dirty-rate=0}); every other flag, injected faults included, stays. The churn is a
 * thread that changes state every 10 ms, an input the check cannot replay on a second device,
 * while {@link EmulatedVfioDevice#advance} is the same deterministic workload run on the
 * caller's thread: two instances that start from the same state and take the same steps must end
 * with the same {@link EmulatedVfioDevice#stateDigest()}.
 */
public final class EmulatedCheckTarget implements CheckTarget {
    /** Guest memory per instance: room for a device's rings and buffers, small enough to scan. */
    public static final long GUEST_MEMORY = 4L << 20;
    /** Where {@link #nic} puts the VF's BAR0 on its private MMIO bus. */
    static final long NIC_BAR = 0xFE00_0000L;

    /** Builds the device; a subclass of the emulated VF (the NIC) plugs in here. */
    @FunctionalInterface
    public interface Factory {
        EmulatedVfioDevice create(String name, EmulatedVfSpec spec, DmaSpace dma);
    }

    private final EmulatedVfSpec spec;
    private final Factory factory;
    private final String description;
    private final AtomicInteger opened = new AtomicInteger();

    public EmulatedCheckTarget(EmulatedVfSpec spec) {
        this(spec, EmulatedVfioDevice::new, "emulated:" + spec.toFlags());
    }

    /**
     * The reference device: an emulated SR-IOV NIC VF, brought up by {@link NicDriver} through
     * MMIO on a private bus (rings in the instance's guest memory, RX in auto-recycle mode), so it
     * receives from its wire and DMAs while it runs and the DMA-log rule sees real device writes.
     */
    public static EmulatedCheckTarget nic(EmulatedVfSpec spec, String description) {
        return new EmulatedCheckTarget(spec, EmulatedCheckTarget::busyNic, description);
    }

    private static EmulatedVfioDevice busyNic(String name, EmulatedVfSpec spec, DmaSpace dma) {
        EmulatedNicVf vf = new EmulatedNicVf(name, spec, dma);
        try {
            IoBus bus = new IoBus(name + "-mmio");
            bus.register(name, NIC_BAR, NicRegisters.BAR0_SIZE, vf.bar0());
            new NicDriver(name, bus, NIC_BAR, ((GuestDmaSpace) dma).memory(), NicDriver.Layout.standard(0)).bringUp();
            return vf;
        } catch (RuntimeException | Error e) {
            vf.close();
            throw e;
        }
    }

    public EmulatedCheckTarget(EmulatedVfSpec spec, Factory factory, String description) {
        this.spec = Objects.requireNonNull(spec, "spec");
        this.factory = Objects.requireNonNull(factory, "factory");
        this.description = Objects.requireNonNull(description, "description");
    }

    public EmulatedVfSpec spec() {
        return spec;
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public CheckedDevice open() {
        return build(spec);
    }

    @Override
    public Optional<CheckedDevice> openReplayable() {
        return Optional.of(build(spec.withDirtyRate(0).withPacketRate(0)));
    }

    /** How many instances were opened so far. */
    public int instancesOpened() {
        return opened.get();
    }

    private Instance build(EmulatedVfSpec s) {
        GuestMemory memory = GuestMemory.ofSize(GUEST_MEMORY);
        try {
            GuestDmaSpace dma = new GuestDmaSpace(memory);
            EmulatedVfioDevice device = factory.create("vf" + opened.getAndIncrement(), s, dma);
            return new Instance(device, memory, dma);
        } catch (RuntimeException | Error e) {
            memory.close();
            throw e;
        }
    }

    /** A device and the guest memory it DMAs into; closes both. */
    private static final class Instance implements CheckedDevice {
        private final EmulatedVfioDevice device;
        private final CheckedDevice owner;

        Instance(EmulatedVfioDevice device, GuestMemory memory, GuestDmaSpace dma) {
            this.device = device;
            this.owner = CheckedDevice.withMemory(device, dma, memory);
        }

        @Override
        public VfioDevice device() {
            return device;
        }

        @Override
        public Optional<DmaSpace> dmaSpace() {
            return owner.dmaSpace();
        }

        @Override
        public boolean advance(int steps) {
            device.advance(steps);
            return true;
        }

        @Override
        public OptionalLong stateDigest() {
            return OptionalLong.of(device.stateDigest());
        }

        @Override
        public void close() {
            owner.close();
        }
    }
}
