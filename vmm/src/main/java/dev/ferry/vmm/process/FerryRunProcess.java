package dev.ferry.vmm.process;

import dev.ferry.vmm.qmp.QmpClient;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.stream.Stream;

/**
 * A {@code ferry run} child JVM — {@code java -cp CLASSPATH dev.ferry.vmm.Ferry run --qmp SOCKET
 * ARGS} — with its output in a log file and a negotiated {@link QmpClient} once its socket is up.
 * {@link #close()} asks it to quit and kills it if it does not; a JVM shutdown hook kills whatever
 * is still alive, so a demo or test run that is cut short leaves no VMM behind.
 *
 * <p>The class path is this JVM's, provided it really holds Ferry: surefire passes the test class
 * path in {@code java.class.path} (and in {@code surefire.test.class.path}, which is the one that
 * holds it when surefire runs tests in an isolated class loader); a launcher may instead run from a
 * manifest-only jar whose {@code Class-Path} names the real entries, which are then used.
 */
public final class FerryRunProcess implements AutoCloseable {
    public static final Duration WAIT = Duration.ofSeconds(60);
    private static final String FERRY_CLASS = "dev/ferry/vmm/Ferry.class";
    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(Process::destroyForcibly),
                "ferry-children"));
    }

    private final String name;
    private final Process process;
    private final Path log;
    private final Path qmpSocket;
    private QmpClient qmp;

    private FerryRunProcess(String name, Process process, Path log, Path qmpSocket) {
        this.name = name;
        this.process = process;
        this.log = log;
        this.qmpSocket = qmpSocket;
    }

    /** Starts {@code ferry run --config CONFIG --qmp DIR/NAME.qmp ARGS}; returns at once. */
    public static FerryRunProcess start(String name, Path dir, Path config, List<String> args) throws IOException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        String classPath = classPath();
        List<String> cmd = new ArrayList<>(List.of(java.toString(), "-Xmx256m", "-XX:MaxDirectMemorySize=256m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info"));
        cmd.addAll(sharedArchive(classPath));
        cmd.addAll(List.of("-cp", classPath, "dev.ferry.vmm.Ferry", "run"));
        Path sock = dir.resolve(name + ".qmp");
        cmd.addAll(List.of("--config", config.toString(), "--qmp", sock.toString()));
        cmd.addAll(args);
        Path log = dir.resolve(name + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        LIVE.add(p);
        return new FerryRunProcess(name, p, log, sock);
    }

    /** The process id (for its CPU time in /proc). */
    public long pid() {
        return process.pid();
    }

    /** Waits for the QMP socket, connects and negotiates; fails with the process's output if it died. */
    public QmpClient qmp() throws IOException, InterruptedException {
        if (qmp != null) {
            return qmp;
        }
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!Files.exists(qmpSocket)) {
            if (!process.isAlive()) {
                throw new IOException(name + " VMM exited with status " + process.exitValue() + " before it opened "
                        + qmpSocket + ":\n" + output());
            }
            if (System.nanoTime() > deadline) {
                throw new IOException(name + " VMM did not open its QMP socket within " + WAIT + ":\n" + output());
            }
            Thread.sleep(10);
        }
        qmp = QmpClient.connect(qmpSocket, WAIT);
        qmp.negotiate();
        return qmp;
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** SIGKILL, as a crash or the OOM killer would end it; returns once it is gone. */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor();
        LIVE.remove(process);
    }

    /** The process's output so far (for failure messages). */
    public String output() {
        try {
            return name + " log:\n" + Files.readString(log);
        } catch (IOException e) {
            return name + ": no output (" + e.getMessage() + ")";
        }
    }

    /** quit through QMP, then SIGKILL if it is still there after a few seconds. */
    @Override
    public void close() {
        try {
            if (qmp != null && process.isAlive()) {
                qmp.execute("quit", null, Duration.ofSeconds(5));
            }
        } catch (Exception e) {
            // gone already, or hanging: killed below
        } finally {
            if (qmp != null) {
                qmp.close();
            }
            try {
                if (!process.waitFor(5, TimeUnit.SECONDS)) {
                    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
            LIVE.remove(process);
        }
    }

    /** This JVM's class path if it holds Ferry, else the Class-Path of the manifest-only jar it runs from. */
    /**
     * The JVM options that map the class-data sharing archive {@code ./ferry} trained for this jar
     * ({@code ferry.jsa} beside it, not older than it), or none: a test class path has no archive.
     */
    public static List<String> sharedArchive(String classPath) {
        if (classPath.contains(File.pathSeparator) || !classPath.endsWith(".jar")) {
            return List.of();
        }
        Path jar = Path.of(classPath);
        Path jsa = jar.resolveSibling("ferry.jsa");
        try {
            if (Files.isRegularFile(jsa)
                    && Files.getLastModifiedTime(jsa).compareTo(Files.getLastModifiedTime(jar)) >= 0) {
                return List.of("-XX:SharedArchiveFile=" + jsa, "-Xlog:cds*=off");
            }
        } catch (IOException e) {
            return List.of();
        }
        return List.of();
    }

    public static String classPath() {
        String own = System.getProperty("java.class.path", "");
        if (holdsFerry(own)) {
            return own;
        }
        String surefire = System.getProperty("surefire.test.class.path", ""); // with an isolated class loader
        if (holdsFerry(surefire)) {
            return surefire;
        }
        String[] entries = own.split(File.pathSeparator);
        if (entries.length == 1 && entries[0].endsWith(".jar")) {
            String expanded = manifestClassPath(Path.of(entries[0]));
            if (holdsFerry(expanded)) {
                return expanded;
            }
        }
        throw new IllegalStateException("cannot find a class path holding " + FERRY_CLASS + " for the ferry run child"
                + " processes; java.class.path is " + own);
    }

    private static boolean holdsFerry(String classPath) {
        return Stream.of(classPath.split(File.pathSeparator)).filter(e -> !e.isEmpty()).map(Path::of).anyMatch(e -> {
            if (Files.isDirectory(e)) {
                return Files.isRegularFile(e.resolve(FERRY_CLASS));
            }
            if (!Files.isRegularFile(e)) {
                return false;
            }
            try (JarFile jar = new JarFile(e.toFile())) {
                return jar.getEntry(FERRY_CLASS) != null;
            } catch (IOException ex) {
                return false;
            }
        });
    }

    private static String manifestClassPath(Path jarPath) {
        try (JarFile jar = new JarFile(jarPath.toFile())) {
            String cp = jar.getManifest() == null ? null
                    : jar.getManifest().getMainAttributes().getValue(Attributes.Name.CLASS_PATH);
            if (cp == null) {
                return "";
            }
            List<String> paths = new ArrayList<>();
            for (String url : cp.trim().split("\\s+")) {
                paths.add(Path.of(jarPath.toUri().resolve(new URI(url))).toString()); // relative to the jar
            }
            return String.join(File.pathSeparator, paths);
        } catch (IOException e) {
            throw new UncheckedIOException(jarPath + ": cannot read its manifest", e);
        } catch (URISyntaxException | IllegalArgumentException e) {
            throw new IllegalStateException(jarPath + ": unusable Class-Path in its manifest: " + e.getMessage(), e);
        }
    }
}
