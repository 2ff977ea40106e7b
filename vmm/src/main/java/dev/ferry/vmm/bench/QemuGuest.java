package dev.ferry.vmm.bench;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The Linux guest QEMU runs in the side-by-side benchmark: a distribution kernel and an initramfs
 * holding one static program ({@code qemu-scenario-init.c}) that fills memory with random data and
 * keeps dirtying it. The kernel is the one given, else the newest {@code /boot/vmlinuz-*}, else
 * Debian's {@code linux-image-amd64} fetched with {@code apt-get download} into the cache
 * directory and unpacked there (no install, no root needed beyond apt's cache).
 */
final class QemuGuest {
    final Path kernel;
    final Path initrd;

    private QemuGuest(Path kernel, Path initrd) {
        this.kernel = kernel;
        this.initrd = initrd;
    }

    static QemuGuest prepare(Path cache, Path kernel) throws IOException, InterruptedException {
        Files.createDirectories(cache);
        Path k = kernel != null ? kernel : findKernel(cache);
        if (!Files.isReadable(k)) {
            throw new IOException("kernel " + k + " is not readable");
        }
        Path src = cache.resolve("init.c");
        try (InputStream in = QemuGuest.class.getResourceAsStream("qemu-scenario-init.c")) {
            Files.write(src, in.readAllBytes());
        }
        Path init = cache.resolve("init");
        run(cache, List.of("gcc", "-static", "-O2", "-Wall", "-o", init.toString(), src.toString()));
        Path initrd = cache.resolve("initrd.cpio");
        Files.write(initrd, newc(List.of(new Entry("init", 0100755, Files.readAllBytes(init)),
                new Entry("dev", 040755, new byte[0]), new Entry("proc", 040755, new byte[0]))));
        return new QemuGuest(k, initrd);
    }

    private static Path findKernel(Path cache) throws IOException, InterruptedException {
        Optional<Path> boot = newestKernel(Path.of("/boot"));
        if (boot.isPresent()) {
            return boot.get();
        }
        Optional<Path> cached = newestKernel(cache.resolve("kernel/boot"));
        if (cached.isPresent()) {
            return cached.get();
        }
        // linux-image-amd64 is a meta package: download the versioned image it depends on.
        String deps = run(cache, List.of("apt-cache", "depends", "linux-image-amd64"));
        String pkg = deps.lines().map(String::trim).filter(l -> l.startsWith("Depends: linux-image-"))
                .map(l -> l.substring("Depends: ".length())).findFirst()
                .orElseThrow(() -> new IOException("no kernel: give --kernel, or make apt know linux-image-amd64"
                        + " (apt-get update)"));
        run(cache, List.of("apt-get", "download", pkg));
        Path deb;
        try (Stream<Path> s = Files.list(cache)) {
            deb = s.filter(p -> p.getFileName().toString().startsWith(pkg + "_")).findFirst()
                    .orElseThrow(() -> new IOException("apt-get download " + pkg + " left no package in " + cache));
        }
        run(cache, List.of("dpkg-deb", "-x", deb.toString(), cache.resolve("kernel").toString()));
        Files.delete(deb);
        return newestKernel(cache.resolve("kernel/boot"))
                .orElseThrow(() -> new IOException(pkg + " holds no /boot/vmlinuz-*"));
    }

    private static Optional<Path> newestKernel(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return Optional.empty();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().startsWith("vmlinuz-") && Files.isReadable(p))
                    .max(Comparator.comparing(p -> p.getFileName().toString()));
        }
    }

    private static String run(Path dir, List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed:\n" + new String(out, StandardCharsets.UTF_8));
        }
        return new String(out, StandardCharsets.UTF_8);
    }

    /** One file or directory of an initramfs. */
    record Entry(String name, int mode, byte[] data) {
    }

    /**
     * The entries as a "newc" cpio archive, the format the kernel unpacks into its rootfs: per
     * entry a 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-terminated name padded
     * to 4 bytes, the data padded to 4 bytes; then the TRAILER!!! entry.
     */
    static byte[] newc(List<Entry> entries) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        List<Entry> all = new ArrayList<>(entries);
        all.add(new Entry("TRAILER!!!", 0, new byte[0]));
        int ino = 1;
        for (Entry e : all) {
            byte[] name = (e.name + "\0").getBytes(StandardCharsets.US_ASCII);
            boolean trailer = e.name.equals("TRAILER!!!");
            long[] fields = {trailer ? 0 : ino++, e.mode, 0, 0, trailer ? 1 : (e.mode & 040000) != 0 ? 2 : 1, 0,
                    e.data.length, 0, 0, 0, 0, name.length, 0};
            StringBuilder h = new StringBuilder("070701");
            for (long f : fields) {
                h.append(String.format("%08X", f));
            }
            out.writeBytes(h.toString().getBytes(StandardCharsets.US_ASCII));
            out.writeBytes(name);
            pad(out);
            out.writeBytes(e.data);
            pad(out);
        }
        return out.toByteArray();
    }

    private static void pad(ByteArrayOutputStream out) {
        while (out.size() % 4 != 0) {
            out.write(0);
        }
    }
}
