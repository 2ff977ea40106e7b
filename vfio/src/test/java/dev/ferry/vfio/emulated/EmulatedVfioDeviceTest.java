package dev.ferry.vfio.emulated;

import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioDeviceContractTest;

/** The emulated device, used directly, keeps the whole {@link VfioDeviceContractTest} contract. */
class EmulatedVfioDeviceTest extends VfioDeviceContractTest {
    @Override
    protected VfioDevice open(EmulatedVfSpec spec, DmaSpace dma) {
        return new EmulatedVfioDevice("vf0", spec, dma);
    }

    @Override
    protected EmulatedVfioDevice backing(VfioDevice device) {
        return (EmulatedVfioDevice) device;
    }
}
