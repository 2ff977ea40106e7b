package dev.ferry.vmm.guest;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * An initramfs for a Linux guest under QEMU: a static {@code /init} compiled from C with gcc,
 * plus whatever files and directories the caller adds (kernel modules, data), written as the
 * "newc" cpio archive the kernel unpacks into its rootfs. Not thread-safe; build it on one thread.
 */
public final class Initramfs {
    private final List<Entry> entries = new ArrayList<>();

    /** One file or directory of an initramfs ({@code mode} with the S_IFREG / S_IFDIR bits). */
    public record Entry(String name, int mode, byte[] data) {
    }

    /** Adds a directory (its parents must have been added before). */
    public Initramfs dir(String name) {
        entries.add(new Entry(name, 040755, new byte[0]));
        return this;
    }

    /** Adds a regular file. */
    public Initramfs file(String name, int mode, byte[] data) {
        entries.add(new Entry(name, 0100000 | (mode & 07777), data));
        return this;
    }

    /**
     * Compiles {@code source} (a C program, static, no libraries beyond libc) with gcc in
     * {@code work} and adds it as {@code /init}.
     */
    public Initramfs init(byte[] source, Path work) throws IOException, InterruptedException {
        Path src = work.resolve("init.c");
        Files.write(src, source);
        Path init = work.resolve("init");
        run(work, List.of("gcc", "-static", "-O2", "-Wall", "-o", init.toString(), src.toString()));
        return file("init", 0755, Files.readAllBytes(init));
    }

    /** {@link #init(byte[], Path)} with the source read from a class-path resource of {@code owner}. */
    public Initramfs init(Class<?> owner, String resource, Path work) throws IOException, InterruptedException {
        try (InputStream in = owner.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IOException("no resource " + resource + " next to " + owner.getName());
            }
            return init(in.readAllBytes(), work);
        }
    }

    /** Writes the archive to {@code path} and returns it. */
    public Path write(Path path) throws IOException {
        Files.write(path, newc(entries));
        return path;
    }

    static String run(Path dir, List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed:\n" + new String(out, StandardCharsets.UTF_8));
        }
        return new String(out, StandardCharsets.UTF_8);
    }

    /**
     * The entries as a "newc" cpio archive, the format the kernel unpacks into its rootfs: per
     * entry a 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-terminated name padded
     * to 4 bytes, the data padded to 4 bytes; then the TRAILER!!! entry.
     */
    public static byte[] newc(List<Entry> entries) {
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
