package dev.ferry.vfio.kernel;

import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;

import java.util.List;

/**
 * A PCI function the {@link FakeVfioKernel} hosts, bound to vfio-pci with an emulated device as
 * its migration driver: its PCI address, IOMMU group, cdev number, and the IOMMU domain its DMA
 * goes through right now.
 *
 * <p>{@link #dma()} is the device's view of memory: an IOVA resolves through the mappings of the
 * container its group joined (after VFIO_SET_IOMMU) or of the IOAS its cdev attached to, and
 * faults otherwise — so a device only reaches guest RAM that was really mapped for it.
 */
public final class FakeHostDevice {
    private final String pciAddress;
    private final int group;
    private final int cdevIndex;
    private final boolean resetWorks;
    private volatile FakeIovaTable domain;
    private EmulatedVfioDevice driver;
    /** Device files open on it (group path or bound cdev); the fake kernel's lock guards it. */
    int openCount;

    FakeHostDevice(String pciAddress, int group, int cdevIndex, boolean resetWorks) {
        this.pciAddress = pciAddress;
        this.group = group;
        this.cdevIndex = cdevIndex;
        this.resetWorks = resetWorks;
    }

    void driver(EmulatedVfioDevice d) {
        this.driver = d;
    }

    void domain(FakeIovaTable t) {
        this.domain = t;
    }

    public String pciAddress() {
        return pciAddress;
    }

    public int iommuGroup() {
        return group;
    }

    /** {@code /dev/vfio/devices/vfioN}. */
    public String cdevPath() {
        return KernelVfioDeviceFactory.VFIO_CDEV_DIR + "vfio" + cdevIndex;
    }

    /** {@code /dev/vfio/<group>}. */
    public String groupPath() {
        return KernelVfioDeviceFactory.VFIO_GROUP_DIR + group;
    }

    public boolean resetWorks() {
        return resetWorks;
    }

    /** The emulated device behind the fd: what the test observes. */
    public EmulatedVfioDevice emulated() {
        return driver;
    }

    /** Whether the device's DMA currently goes through an IOMMU domain. */
    public boolean attached() {
        return domain != null;
    }

    /** The ranges mapped in the device's domain now (empty when detached). */
    public List<IovaRange> mappedRanges() {
        FakeIovaTable t = domain;
        return t == null ? List.of() : t.ranges();
    }

    /** The device's DMA view, handed to its emulated driver. */
    DmaSpace dma() {
        return new DmaSpace() {
            @Override
            public long hostAddress(long iova, long length) {
                FakeIovaTable t = domain;
                if (t == null) {
                    throw new IllegalArgumentException("IOMMU fault: " + pciAddress + " is attached to no IOMMU domain");
                }
                return t.translate(iova, length);
            }

            @Override
            public List<IovaRange> mappedRanges() {
                return FakeHostDevice.this.mappedRanges();
            }
        };
    }

    @Override
    public String toString() {
        return pciAddress + " (group " + group + ", " + cdevPath() + ")";
    }
}
