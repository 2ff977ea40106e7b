package dev.ferry.vfio.kernel;

import dev.ferry.vfio.kernel.KernelTestBed.Interface;

/** {@link KernelVfioDeviceContractTest} with devices opened through their group and a type1v2 container. */
class KernelVfioDeviceGroupContractTest extends KernelVfioDeviceContractTest {
    @Override
    Interface how() {
        return Interface.GROUP;
    }
}
