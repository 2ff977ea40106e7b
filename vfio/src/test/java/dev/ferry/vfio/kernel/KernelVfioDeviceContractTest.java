package dev.ferry.vfio.kernel;

import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioDeviceContractTest;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.kernel.KernelTestBed.Interface;

import java.util.IdentityHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The {@link VfioDeviceContractTest} run on {@link KernelVfioDevice}s opened through their cdev
 * (iommufd) from the {@link FakeVfioKernel}: every uAPI rule the contract proves for the emulated
 * device holds when each call crosses the syscall seam as bytes — the fake kernel refusing what
 * the real one refuses, the emulated device behind it as the driver, its DMA going through the
 * IOMMU mappings the kernel device made. After each test the fake kernel's fd table is empty.
 */
class KernelVfioDeviceContractTest extends VfioDeviceContractTest {
    private KernelTestBed bed;
    private final Map<VfioDevice, FakeHostDevice> hosts = new IdentityHashMap<>();

    /** How the devices are opened. */
    Interface how() {
        return Interface.CDEV;
    }

    @Override
    protected VfioDevice open(EmulatedVfSpec spec, DmaSpace dma) throws Exception {
        if (bed == null) {
            KernelTestBed b = new KernelTestBed();
            // closed after every device and data fd of the test, in reverse order of registration
            own(() -> assertEquals(Map.of(), b.kernel.openFds(), "fds left open in the fake kernel"));
            own(b);
            bed = b;
        }
        FakeHostDevice host = bed.host(spec);
        KernelVfioDevice d = bed.factory.open("vf" + hosts.size(), how().deviceName(host), dma);
        hosts.put(d, host);
        return d;
    }

    @Override
    protected EmulatedVfioDevice backing(VfioDevice device) {
        return hosts.get(device).emulated();
    }
}
