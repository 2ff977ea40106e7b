package dev.ferry.core.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Finds file descriptors a piece of code opened and did not close, from {@code /proc/self/fd}.
 * <pre>
 *   FdLeakCheck check = FdLeakCheck.start();
 *   ... create and close memories, devices, a whole migration ...
 *   check.assertNoLeaks();   // AssertionError naming each new fd and what it points to
 * </pre>
 * A leak is an fd that is open at the end and was not open, with the same target, at the start.
 * Fds the JVM opens on its own behind the test's back (class-loader jar files) are ignored; warm
 * the code path up once before {@link #start()} so lazily opened JDK resources are already open.
 * Linux only; the process-wide count makes it meaningful only while no other test runs
 * concurrently in the same JVM (surefire's default).
 */
public final class FdLeakCheck {
    private static final Path FD_DIR = Path.of("/proc/self/fd");
    private final Map<Integer, String> before;

    private FdLeakCheck(Map<Integer, String> before) {
        this.before = before;
    }

    /** Remembers the fds open now. */
    public static FdLeakCheck start() {
        return new FdLeakCheck(openFds());
    }

    /** How many fds this process has open (the listing's own directory fd not counted). */
    public static int openFdCount() {
        return openFds().size();
    }

    /** Open fds and what each points to ({@code readlink /proc/self/fd/N}). */
    public static Map<Integer, String> openFds() {
        Map<Integer, String> fds = new TreeMap<>();
        List<Path> entries = new ArrayList<>();
        try (DirectoryStream<Path> dir = Files.newDirectoryStream(FD_DIR)) {
            for (Path p : dir) {
                entries.add(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + FD_DIR, e);
        }
        // The directory stream's own fd is closed now, so its entry no longer resolves.
        for (Path p : entries) {
            try {
                fds.put(Integer.parseInt(p.getFileName().toString()), Files.readSymbolicLink(p).toString());
            } catch (NoSuchFileException e) {
                // closed meanwhile (the listing's own fd, or another thread's)
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + p, e);
            }
        }
        return fds;
    }

    /** Fds open now that were not open (with the same target) at {@link #start()}. */
    public Map<Integer, String> leaked() {
        Map<Integer, String> leaked = new TreeMap<>();
        openFds().forEach((fd, target) -> {
            if (!target.equals(before.get(fd)) && !ignored(target)) {
                leaked.put(fd, target);
            }
        });
        return leaked;
    }

    public void assertNoLeaks() {
        Map<Integer, String> leaked = leaked();
        if (!leaked.isEmpty()) {
            StringBuilder sb = new StringBuilder(leaked.size() + " fd(s) leaked:");
            leaked.forEach((fd, target) -> sb.append("\n  fd ").append(fd).append(" -> ").append(target));
            throw new AssertionError(sb.toString());
        }
    }

    /**
     * Files the JVM opens behind a test's back and keeps open for a while: the class loaders' jars,
     * and the cgroup files its container support reads (memory.stat and friends, opened from the
     * GC's or another JVM thread while the test runs). Ferry never opens either.
     */
    private static boolean ignored(String target) {
        return target.endsWith(".jar") || target.endsWith(".jmod") || target.endsWith("/lib/modules")
                || target.startsWith("/sys/fs/cgroup/");
    }
}
