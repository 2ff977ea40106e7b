package dev.ferry.vmm.guest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A Linux kernel for a QEMU guest and, when present, its modules: the kernel given, else the
 * newest {@code /boot/vmlinuz-*}, else Debian's {@code linux-image-amd64} fetched with {@code
 * apt-get download} into a cache directory and unpacked there with {@code dpkg-deb -x} (no
 * install, no root). A kernel at {@code ROOT/boot/vmlinuz-VERSION} has its modules at {@code
 * ROOT/lib/modules/VERSION}.
 *
 * <p>A distribution kernel builds most drivers as modules; {@link #modules} finds the files an
 * initramfs needs to load a driver, in an order the kernel accepts (each module after the ones
 * it depends on). The dependencies come from each module's own {@code depends=} entry in its
 * {@code .modinfo} section, so no {@code modules.dep} (which a {@code dpkg-deb -x} leaves out,
 * it is made by depmod at install) is needed.
 */
public record LinuxKernel(Path image, String version, Path modulesDir) {
    private static final byte[] DEPENDS = "\0depends=".getBytes(StandardCharsets.US_ASCII);

    /** A module file and the name the kernel knows it by. */
    public record Module(String name, Path file) {
    }

    /**
     * Finds a kernel: {@code given} if not null, else the newest under {@code /boot} (with
     * {@code needModules}: only one whose modules are installed), else one unpacked in {@code
     * cache}, else fetched there.
     */
    public static LinuxKernel find(Path cache, Path given, boolean needModules) throws IOException, InterruptedException {
        Files.createDirectories(cache);
        if (given != null) {
            if (!Files.isReadable(given)) {
                throw new IOException("kernel " + given + " is not readable");
            }
            return of(given);
        }
        Optional<Path> boot = newest(Path.of("/boot"));
        if (boot.isPresent() && (!needModules || of(boot.get()).modulesDir() != null)) {
            return of(boot.get());
        }
        Optional<Path> cached = newest(cache.resolve("kernel/boot"));
        if (cached.isPresent()) {
            return of(cached.get());
        }
        // linux-image-amd64 is a meta package: download the versioned image it depends on.
        String deps = Initramfs.run(cache, List.of("apt-cache", "depends", "linux-image-amd64"));
        String pkg = deps.lines().map(String::trim).filter(l -> l.startsWith("Depends: linux-image-"))
                .map(l -> l.substring("Depends: ".length())).findFirst()
                .orElseThrow(() -> new IOException("no kernel: give --kernel, or make apt know linux-image-amd64"
                        + " (apt-get update)"));
        Initramfs.run(cache, List.of("apt-get", "download", pkg));
        Path deb;
        try (Stream<Path> s = Files.list(cache)) {
            deb = s.filter(p -> p.getFileName().toString().startsWith(pkg + "_")).findFirst()
                    .orElseThrow(() -> new IOException("apt-get download " + pkg + " left no package in " + cache));
        }
        Initramfs.run(cache, List.of("dpkg-deb", "-x", deb.toString(), cache.resolve("kernel").toString()));
        Files.delete(deb);
        return of(newest(cache.resolve("kernel/boot"))
                .orElseThrow(() -> new IOException(pkg + " holds no /boot/vmlinuz-*")));
    }

    /** The kernel at {@code image}; its modules directory if {@code ../lib/modules/VERSION} exists. */
    public static LinuxKernel of(Path image) {
        String file = image.getFileName().toString();
        String version = file.startsWith("vmlinuz-") ? file.substring("vmlinuz-".length()) : "";
        Path parent = image.toAbsolutePath().getParent();
        Path root = parent == null ? null : parent.getParent();
        Path modules = root == null || version.isEmpty() ? null : root.resolve("lib/modules").resolve(version);
        return new LinuxKernel(image, version, modules != null && Files.isDirectory(modules) ? modules : null);
    }

    private static Optional<Path> newest(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return Optional.empty();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().startsWith("vmlinuz-") && Files.isReadable(p))
                    .max(Comparator.comparing(p -> p.getFileName().toString()));
        }
    }

    /**
     * The module files that make {@code names} loaded, dependencies first; a module built into
     * the kernel ({@code modules.builtin}) needs no file and is left out. Fails naming the module
     * that has no file, or whose file is compressed (the guest would need a decompressor).
     */
    public List<Module> modules(String... names) throws IOException {
        if (modulesDir == null) {
            throw new IOException("kernel " + image + " has no modules directory (ROOT/lib/modules/" + version + ")");
        }
        Set<String> builtin = new HashSet<>();
        Path builtinList = modulesDir.resolve("modules.builtin");
        if (Files.isReadable(builtinList)) {
            for (String line : Files.readAllLines(builtinList)) {
                builtin.add(nameOf(line.substring(line.lastIndexOf('/') + 1)));
            }
        }
        Map<String, Path> files = new HashMap<>();
        try (Stream<Path> s = Files.walk(modulesDir.resolve("kernel"))) {
            s.filter(Files::isRegularFile).forEach(p -> files.putIfAbsent(nameOf(p.getFileName().toString()), p));
        }
        LinkedHashSet<String> order = new LinkedHashSet<>();
        for (String n : names) {
            visit(nameOf(n), files, builtin, order, new HashSet<>());
        }
        List<Module> out = new ArrayList<>();
        for (String n : order) {
            out.add(new Module(n, files.get(n)));
        }
        return out;
    }

    private static void visit(String name, Map<String, Path> files, Set<String> builtin, LinkedHashSet<String> order,
                              Set<String> path) throws IOException {
        if (order.contains(name) || builtin.contains(name)) {
            return;
        }
        if (!path.add(name)) {
            throw new IOException("module " + name + " depends on itself through " + path);
        }
        Path f = files.get(name);
        if (f == null) {
            throw new IOException("no module " + name + " (neither a .ko file nor in modules.builtin)");
        }
        if (!f.getFileName().toString().endsWith(".ko")) {
            throw new IOException("module " + name + " is compressed (" + f.getFileName() + "); only plain .ko is loaded");
        }
        for (String dep : depends(Files.readAllBytes(f))) {
            visit(dep, files, builtin, order, path);
        }
        path.remove(name);
        order.add(name);
    }

    /** The names after {@code depends=} in a module's {@code .modinfo} (NUL-separated key=value strings). */
    static List<String> depends(byte[] ko) {
        int at = indexOf(ko, DEPENDS);
        if (at < 0) {
            return List.of();
        }
        int from = at + DEPENDS.length;
        int to = from;
        while (to < ko.length && ko[to] != 0) {
            to++;
        }
        List<String> out = new ArrayList<>();
        for (String d : new String(ko, from, to - from, StandardCharsets.US_ASCII).split(",")) {
            if (!d.isBlank()) {
                out.add(nameOf(d.trim()));
            }
        }
        return out;
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** The kernel's name of a module file: no extension, '-' read as '_'. */
    static String nameOf(String file) {
        int dot = file.indexOf(".ko");
        return (dot < 0 ? file : file.substring(0, dot)).replace('-', '_');
    }
}
