package dev.ferry.core.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Reads numbers out of the host's C headers: compiles a small C program with gcc, runs it, and
 * parses its {@code NAME VALUE} lines. Kernel constants, ioctl numbers and struct layouts in Ferry
 * are checked against the headers this way (vmm-core's {@code linux.h}-level constants here; the
 * KVM and VFIO layers reuse it for {@code linux/kvm.h} and {@code linux/vfio.h}).
 *
 * <p>Probe sources live on the test classpath (e.g. {@code /probes/linux_constants.c}) and may
 * {@code #include "ferry_probe.h"}, which defines:
 * <pre>
 *   FERRY_PROBE(NAME)                    prints "NAME value" (the name as written, unexpanded)
 *   FERRY_PROBE_AS("key", expr)          prints "key value"
 *   FERRY_SIZEOF("key", type)            prints "key sizeof(type)"
 *   FERRY_OFFSETOF("key", type, member)  prints "key offsetof(type, member)"
 * </pre>
 * Values are printed as signed 64-bit decimals. A key must not contain whitespace and must be
 * printed once.
 *
 * <p>Tests that use it skip when gcc is absent:
 * {@code assumeTrue(CProbe.gccAvailable(), CProbe.NO_GCC)}.
 */
public final class CProbe {
    /** The reason to give when skipping for lack of a compiler. */
    public static final String NO_GCC = "gcc not found on PATH: checking constants against the host's C headers "
            + "needs a C compiler (apt-get install gcc)";
    private static final String HEADER = "ferry_probe.h";
    private static final long TIMEOUT_SECONDS = 60;
    private static Boolean gcc;

    private CProbe() {
    }

    /** True when {@code gcc} runs. Checked once per JVM. */
    public static synchronized boolean gccAvailable() {
        if (gcc == null) {
            try {
                Process p = new ProcessBuilder("gcc", "--version").redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                gcc = p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS) && p.exitValue() == 0;
            } catch (IOException e) {
                gcc = false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return gcc;
    }

    /** True when {@code #include <header>} compiles (e.g. {@code "linux/kvm.h"}); false without gcc. */
    public static boolean headerAvailable(String header) {
        if (!gccAvailable()) {
            return false;
        }
        try {
            compileAndRun("header_check.c", "#include <" + header + ">\nint main(void) { return 0; }\n", List.of());
            return true;
        } catch (ProbeFailure e) {
            return false;
        }
    }

    /**
     * Compiles and runs the probe source at {@code resource} on the test classpath (an absolute
     * resource name such as {@code "/probes/linux_constants.c"}).
     */
    public static Map<String, Long> runResource(String resource, String... gccArgs) {
        return run(Path.of(resource).getFileName().toString(), readResource(resource), gccArgs);
    }

    /** Compiles and runs {@code source} (saved as {@code fileName}); returns the printed values in order. */
    public static Map<String, Long> run(String fileName, String source, String... gccArgs) {
        return parse(fileName, compileAndRun(fileName, source, List.of(gccArgs)));
    }

    /**
     * Compares a class's {@code public static final} constants with probed values. Every such
     * field must appear in {@code fieldToKey} (Java field name → probe key), so a constant added
     * in Java without a C counterpart is a problem, not a silent pass. int, short and byte fields
     * also match the unsigned reading of their bits (a flag with the top bit set).
     *
     * @return one readable line per problem; empty when everything matches
     */
    public static List<String> compareConstants(Class<?> constants, Map<String, String> fieldToKey,
                                                Map<String, Long> probed) {
        String cls = constants.getSimpleName();
        List<String> problems = new ArrayList<>();
        Map<String, Field> fields = new TreeMap<>();
        for (Field f : constants.getDeclaredFields()) {
            int m = f.getModifiers();
            if (Modifier.isPublic(m) && Modifier.isStatic(m) && Modifier.isFinal(m)) {
                fields.put(f.getName(), f);
            }
        }
        for (String name : fieldToKey.keySet()) {
            if (!fields.containsKey(name)) {
                problems.add("the mapping names " + cls + "." + name + ", which does not exist");
            }
        }
        for (Field f : fields.values()) {
            String key = fieldToKey.get(f.getName());
            if (key == null) {
                problems.add(cls + "." + f.getName() + " has no C counterpart: add it to the probe source and to the "
                        + "mapping in the test");
                continue;
            }
            Long c = probed.get(key);
            if (c == null) {
                problems.add("the probe did not print " + key + " (for " + cls + "." + f.getName() + ")");
                continue;
            }
            Object v;
            try {
                f.setAccessible(true); // constant holders may be package-private (KVM, VFIO bindings)
                v = f.get(null);
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
            if (!(v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte)) {
                problems.add(cls + "." + f.getName() + " is a " + f.getType().getSimpleName()
                        + ", not an integer constant");
                continue;
            }
            long j = ((Number) v).longValue();
            long unsigned = v instanceof Integer ? Integer.toUnsignedLong((Integer) v)
                    : v instanceof Short ? Short.toUnsignedLong((Short) v)
                    : v instanceof Byte ? Byte.toUnsignedLong((Byte) v) : j;
            if (c != j && c != unsigned) {
                problems.add(cls + "." + f.getName() + " = " + j + " (0x" + Long.toHexString(j) + ") but the host's "
                        + "headers say " + key + " = " + c + " (0x" + Long.toHexString(c) + ")");
            }
        }
        return problems;
    }

    /** Signals that a probe did not compile or run; carries gcc's or the program's output. */
    public static final class ProbeFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ProbeFailure(String message) {
            super(message);
        }
    }

    private static String readResource(String resource) {
        try (InputStream in = CProbe.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalArgumentException("no probe source " + resource + " on the test classpath");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String compileAndRun(String fileName, String source, List<String> gccArgs) {
        if (!gccAvailable()) {
            throw new IllegalStateException(NO_GCC);
        }
        Path dir = null;
        try {
            dir = Files.createTempDirectory("ferry-probe");
            Files.writeString(dir.resolve(HEADER), readResource("/probes/" + HEADER));
            Path src = dir.resolve(fileName);
            Files.writeString(src, source);
            Path exe = dir.resolve("probe");
            List<String> cc = new ArrayList<>(List.of("gcc", "-std=gnu11", "-Wall", "-Werror", "-I", dir.toString()));
            cc.addAll(gccArgs);
            cc.addAll(List.of("-o", exe.toString(), src.toString()));
            exec(cc, "compiling " + fileName);
            return exec(List.of(exe.toString()), "running " + fileName);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            if (dir != null) {
                deleteTree(dir);
            }
        }
    }

    private static String exec(List<String> command, String what) throws IOException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        try {
            if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new ProbeFailure(what + " did not finish");
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new ProbeFailure(what + " interrupted");
        }
        if (p.exitValue() != 0) {
            throw new ProbeFailure(what + " failed (exit " + p.exitValue() + "): " + String.join(" ", command) + "\n"
                    + out);
        }
        return out;
    }

    private static Map<String, Long> parse(String fileName, String output) {
        Map<String, Long> values = new LinkedHashMap<>();
        for (String line : output.split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            String[] parts = line.trim().split("\\s+");
            if (parts.length != 2) {
                throw new ProbeFailure(fileName + " printed a line that is not 'NAME VALUE': " + line);
            }
            long v;
            try {
                v = Long.parseLong(parts[1]);
            } catch (NumberFormatException e) {
                throw new ProbeFailure(fileName + " printed a value that is not a decimal long: " + line);
            }
            if (values.put(parts[0], v) != null) {
                throw new ProbeFailure(fileName + " printed " + parts[0] + " twice");
            }
        }
        return values;
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temp directory left behind is not worth failing a test for
        }
    }

    /**
     * Every top-level class compiled into {@code anchor}'s package directory: the bindings a
     * header probe must account for, so that a new class with constants cannot go unchecked.
     */
    public static java.util.List<Class<?>> classesBeside(Class<?> anchor) throws Exception {
        var dir = java.nio.file.Path.of(anchor.getResource(anchor.getSimpleName() + ".class").toURI()).getParent();
        java.util.List<Class<?>> classes = new java.util.ArrayList<>();
        try (var files = java.nio.file.Files.list(dir)) {
            for (var f : files.toList()) {
                String name = f.getFileName().toString();
                if (name.endsWith(".class") && !name.contains("$") && !name.equals("package-info.class")) {
                    classes.add(Class.forName(anchor.getPackageName() + "." + name.replace(".class", "")));
                }
            }
        }
        return classes;
    }

    /** True when {@code cls} declares a public static final field (a constant a probe must check). */
    public static boolean hasPublicConstants(Class<?> cls) {
        for (java.lang.reflect.Field f : cls.getDeclaredFields()) {
            int m = f.getModifiers();
            if (java.lang.reflect.Modifier.isPublic(m) && java.lang.reflect.Modifier.isStatic(m)
                    && java.lang.reflect.Modifier.isFinal(m)) {
                return true;
            }
        }
        return false;
    }

    /** Constants named as in C: each Java field name is its probe key. Adds {@code cls}'s mapping to {@code into}. */
    public static void sameNames(java.util.Map<Class<?>, java.util.Map<String, String>> into, Class<?> cls,
                                 String names) {
        java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
        for (String n : names.split(" ")) {
            m.put(n, n);
        }
        into.put(cls, m);
    }

    /**
     * A flyweight's layout: {@code SIZE → sizeof(struct)} plus {@code "JAVA_FIELD member"} pairs
     * → {@code struct.member}. Adds it to {@code into} and returns it for further entries.
     */
    public static java.util.Map<String, String> layout(java.util.Map<Class<?>, java.util.Map<String, String>> into,
                                                      Class<?> cls, String struct, String... fieldMember) {
        java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
        m.put("SIZE", "sizeof(" + struct + ")");
        for (String pair : fieldMember) {
            String[] p = pair.split(" ");
            m.put(p[0], struct + "." + p[1]);
        }
        into.put(cls, m);
        return m;
    }
}
