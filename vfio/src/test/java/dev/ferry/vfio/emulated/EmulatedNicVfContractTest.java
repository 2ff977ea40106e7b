package dev.ferry.vfio.emulated;

import dev.ferry.core.machine.IoBus;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioDeviceContractTest;

/**
 * The emulated NIC VF keeps the {@link VfioDeviceContractTest} contract while busy: every device
 * the suite opens is brought up by a {@link NicDriver} (rings, MAC, filters, RSS key, RX in
 * auto-recycle mode), so the workload the suite runs ({@code advance}) delivers frames by DMA and
 * the control state that travels is a programmed NIC's. The wire is paced by the suite
 * ({@code pps=0}) so that state digests stay deterministic.
 */
class EmulatedNicVfContractTest extends VfioDeviceContractTest {
    static final long BAR = 0xFE00_0000L;
    static final long DRIVER_AREA = 18L << 20;

    @Override
    protected String baseFlags() {
        return "dirty-rate=0,pps=0";
    }

    @Override
    protected VfioDevice open(EmulatedVfSpec spec, DmaSpace dma) {
        EmulatedNicVf vf = new EmulatedNicVf("nic0", spec, dma);
        IoBus mmio = new IoBus("mmio");
        mmio.register(vf.name(), BAR, NicRegisters.BAR0_SIZE, vf.bar0());
        new NicDriver(vf.name(), mmio, BAR, ((GuestDmaSpace) dma).memory(), NicDriver.Layout.standard(DRIVER_AREA))
                .bringUp();
        return vf;
    }

    @Override
    protected EmulatedVfioDevice backing(VfioDevice device) {
        return (EmulatedNicVf) device;
    }
}
