package dev.ferry.vfio.check;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.kernel.KernelVfioDeviceFactory;

import dev.ferry.vfio.emulated.EmulatedVfSpec;

import java.util.regex.Pattern;

/**
 * Turns the {@code --device} argument of {@code ferry vfio check} into a {@link CheckTarget}:
 * <pre>
 *   emulated                   an emulated VF with all three capabilities
 *   emulated:FLAGS             an emulated VF built from {@link EmulatedVfSpec#parse} flags
 *   /dev/vfio/devices/vfioN    a kernel VFIO device (cdev)
 *   [DDDD:]BB:DD.F             a kernel VFIO device by PCI address
 * </pre>
 * Anything else, and flags the emulated VF does not know, is an {@link IllegalArgumentException}
 * with a message for the user.
 */
public final class CheckTargets {
    private static final Pattern CDEV = Pattern.compile("/dev/vfio/devices/vfio\\d+");
    private static final Pattern PCI = Pattern.compile("([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\\.[0-7]");

    private CheckTargets() {
    }

    public static CheckTarget forDevice(String device) {
        String d = device.trim();
        if (d.equals("emulated") || d.startsWith("emulated:")) {
            String flags = d.equals("emulated") ? "" : d.substring("emulated:".length());
            return EmulatedCheckTarget.nic(EmulatedVfSpec.parse(flags), d);
        }
        if (CDEV.matcher(d).matches()) {
            return kernel(d);
        }
        if (PCI.matcher(d).matches()) {
            // the kernel names functions dddd:bb:dd.f in lower case; the domain defaults to 0000
            String full = (d.length() == 7 ? "0000:" + d : d).toLowerCase(java.util.Locale.ROOT);
            return kernel(full);
        }
        throw new IllegalArgumentException("'" + device + "' is not a device: expected emulated[:FLAGS],"
                + " /dev/vfio/devices/vfioN or a PCI address such as 0000:3b:00.2");
    }

    /**
     * A kernel VFIO device, opened through {@link KernelVfioDeviceFactory#host()} (cdev with
     * iommufd, or the PCI function's group and a type1 container) with a small guest memory
     * mapped for its DMA at IOVA = GPA. Each {@code open()} opens the device anew, so the load
     * rule's instances are successive opens of the same function.
     */
    static CheckTarget kernel(String path) {
        return new CheckTarget() {
            @Override
            public String description() {
                return path;
            }

            @Override
            public CheckedDevice open() throws VfioException {
                GuestMemory memory = GuestMemory.ofSize(EmulatedCheckTarget.GUEST_MEMORY);
                try {
                    GuestDmaSpace dma = new GuestDmaSpace(memory);
                    VfioDevice device = KernelVfioDeviceFactory.host().open(path, dma);
                    return CheckedDevice.withMemory(device, dma, memory);
                } catch (VfioException | RuntimeException e) {
                    memory.close();
                    throw e;
                }
            }

            @Override
            public java.util.Optional<CheckedDevice> openReplayable() {
                return java.util.Optional.empty();
            }
        };
    }
}
