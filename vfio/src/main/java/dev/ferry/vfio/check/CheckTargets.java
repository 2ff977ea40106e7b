package dev.ferry.vfio.check;

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
            return new EmulatedCheckTarget(EmulatedVfSpec.parse(flags), dev.ferry.vfio.emulated.EmulatedVfioDevice::new,
                    d);
        }
        if (CDEV.matcher(d).matches() || PCI.matcher(d).matches()) {
            return kernel(d);
        }
        throw new IllegalArgumentException("'" + device + "' is not a device: expected emulated[:FLAGS],"
                + " /dev/vfio/devices/vfioN or a PCI address such as 0000:3b:00.2");
    }

    /**
     * A kernel VFIO device. Not available yet: it needs a {@code KernelVfioDevice}
     * (package {@code dev.ferry.vfio.kernel}) that opens the cdev or the PCI function's group,
     * maps guest memory for its DMA, and a {@link CheckTarget} whose {@code open()} returns it.
     */
    static CheckTarget kernel(String path) {
        throw new UnsupportedOperationException("kernel devices: not available in this build (" + path
                + " needs dev.ferry.vfio.kernel.KernelVfioDevice and a CheckTarget over it;"
                + " use --device emulated[:FLAGS] meanwhile)");
    }
}
