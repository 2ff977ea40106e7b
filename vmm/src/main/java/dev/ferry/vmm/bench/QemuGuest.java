package dev.ferry.vmm.bench;

import dev.ferry.vmm.guest.Initramfs;
import dev.ferry.vmm.guest.LinuxKernel;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The Linux guest QEMU runs in the side-by-side benchmark: a distribution kernel and an initramfs
 * holding one static program ({@code qemu-scenario-init.c}) that fills memory with random data and
 * keeps dirtying it. The kernel is the one given, else the newest {@code /boot/vmlinuz-*}, else
 * Debian's {@code linux-image-amd64} fetched with {@code apt-get download} into the cache
 * directory and unpacked there (no install, no root needed beyond apt's cache): {@link LinuxKernel}
 * finds it, {@link Initramfs} builds the archive.
 */
final class QemuGuest {
    final Path kernel;
    final Path initrd;

    private QemuGuest(Path kernel, Path initrd) {
        this.kernel = kernel;
        this.initrd = initrd;
    }

    static QemuGuest prepare(Path cache, Path kernel) throws IOException, InterruptedException {
        LinuxKernel k = LinuxKernel.find(cache, kernel, false);
        Path initrd = new Initramfs().init(QemuGuest.class, "qemu-scenario-init.c", cache).dir("dev").dir("proc")
                .write(cache.resolve("initrd.cpio"));
        return new QemuGuest(k.image(), initrd);
    }
}
