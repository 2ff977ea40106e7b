package dev.ferry.vfio.kernel;

import dev.ferry.vfio.emulated.EmulatedVfSpec;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * A fake kernel with a fake sysfs tree and a factory opening devices through both: what a
 * test needs to open {@link KernelVfioDevice}s by cdev path or PCI address.
 */
final class KernelTestBed implements AutoCloseable {
    /** How a test opens a device: through its cdev (iommufd) or its group (container). */
    enum Interface {
        CDEV, GROUP;

        String deviceName(FakeHostDevice d) {
            return this == CDEV ? d.cdevPath() : d.pciAddress();
        }
    }

    final FakeVfioKernel kernel = new FakeVfioKernel();
    final Path sysfs;
    final KernelVfioDeviceFactory factory;
    private int next;

    KernelTestBed() {
        try {
            sysfs = Files.createTempDirectory("ferry-sysfs");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        factory = new KernelVfioDeviceFactory(kernel, sysfs);
    }

    /** A new device at 0000:03:00.N in its own IOMMU group 12+N, listed in sysfs. */
    FakeHostDevice host(EmulatedVfSpec spec) {
        int n = next++;
        FakeHostDevice d = kernel.addDevice(String.format("0000:03:%02x.%d", n / 8, n % 8), 12 + n, spec);
        writeSysfs();
        return d;
    }

    void writeSysfs() {
        try {
            kernel.writeSysfs(sysfs);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void close() {
        kernel.close();
        try (Stream<Path> s = Files.walk(sysfs)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temp directory left behind is not worth failing a test for
        }
    }
}
