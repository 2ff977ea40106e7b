package dev.ferry.vmm.guest;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Module lookup over a modules tree laid out as a distribution package unpacks it ({@code
 * ROOT/boot/vmlinuz-V}, {@code ROOT/lib/modules/V/kernel/...}), each module a file whose
 * {@code .modinfo} strings name its dependencies, as in Debian's virtio modules.
 */
class LinuxKernelTest {
    @TempDir
    Path root;

    private void module(String dir, String file, String depends) throws IOException {
        Path p = root.resolve("lib/modules/6.1.0-test/kernel").resolve(dir).resolve(file);
        Files.createDirectories(p.getParent());
        ByteArrayOutputStream ko = new ByteArrayOutputStream();
        ko.writeBytes(new byte[] {0x7f, 'E', 'L', 'F', 0, 0});
        ko.writeBytes(("license=GPL\0" + (depends == null ? "" : "depends=" + depends + "\0") + "retpoline=Y\0name="
                + file.substring(0, file.indexOf('.')) + "\0").getBytes(StandardCharsets.US_ASCII));
        Files.write(p, ko.toByteArray());
    }

    private LinuxKernel kernel() throws IOException {
        Path image = root.resolve("boot/vmlinuz-6.1.0-test");
        Files.createDirectories(image.getParent());
        Files.write(image, new byte[16]);
        return LinuxKernel.of(image);
    }

    @Test
    void modulesComeDependenciesFirstWithoutModulesDep() throws IOException {
        module("drivers/virtio", "virtio_ring.ko", "");
        module("drivers/virtio", "virtio.ko", "virtio_ring");
        module("drivers/virtio", "virtio_pci_modern_dev.ko", "");
        module("drivers/virtio", "virtio_pci_legacy_dev.ko", "");
        module("drivers/virtio", "virtio_pci.ko", "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio");
        module("net/core", "failover.ko", "");
        module("drivers/net", "net_failover.ko", "failover");
        module("drivers/net", "virtio_net.ko", "virtio_ring,virtio,net_failover");
        module("drivers/block", "virtio_blk.ko", "virtio,virtio_ring");
        LinuxKernel k = kernel();
        assertEquals("6.1.0-test", k.version());
        List<String> order = k.modules("virtio_pci", "virtio_blk", "virtio_net").stream()
                .map(LinuxKernel.Module::name).toList();
        assertEquals(List.of("virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_pci",
                "virtio_blk", "failover", "net_failover", "virtio_net"), order);
        assertTrue(k.modules("virtio_net").get(0).file().endsWith("drivers/virtio/virtio_ring.ko"));
    }

    @Test
    void builtinModulesNeedNoFileAndMissingOnesAreNamed() throws IOException {
        module("drivers/block", "virtio_blk.ko", "virtio,virtio_ring");
        module("drivers/virtio", "virtio-mmio.ko", null);
        LinuxKernel k = kernel();
        Files.writeString(k.modulesDir().resolve("modules.builtin"),
                "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n");
        assertEquals(List.of("virtio_blk"), k.modules("virtio_blk").stream().map(LinuxKernel.Module::name).toList());
        assertEquals(List.of("virtio_mmio"), k.modules("virtio-mmio").stream().map(LinuxKernel.Module::name).toList());
        IOException e = assertThrows(IOException.class, () -> k.modules("virtio_net"));
        assertTrue(e.getMessage().contains("no module virtio_net"), e.getMessage());
    }

    @Test
    void compressedModulesAndAKernelWithoutModulesAreRefused() throws IOException {
        Path xz = root.resolve("lib/modules/6.1.0-test/kernel/drivers/block/virtio_blk.ko.xz");
        Files.createDirectories(xz.getParent());
        Files.write(xz, new byte[8]);
        IOException e = assertThrows(IOException.class, () -> kernel().modules("virtio_blk"));
        assertTrue(e.getMessage().contains("compressed"), e.getMessage());
        Path lone = root.resolve("elsewhere/vmlinuz-5.0");
        Files.createDirectories(lone.getParent());
        Files.write(lone, new byte[16]);
        assertNull(LinuxKernel.of(lone).modulesDir());
        assertThrows(IOException.class, () -> LinuxKernel.of(lone).modules("virtio"));
    }
}
