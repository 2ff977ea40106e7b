package dev.ferry.vmm.qmp;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** What the QMP code may leave behind: threads named ferry-qmp*, and file descriptors. */
final class ThreadsAndFds {
    static final Path FDS = Path.of("/proc/self/fd");

    private ThreadsAndFds() {
    }

    /** Live threads of the QMP code. */
    static Set<Thread> qmpThreads() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("ferry-qmp") && t.isAlive())
                .collect(Collectors.toSet());
    }

    /** Waits for QMP threads not in {@code keep} to end (threads finish just after their work). */
    static Set<Thread> qmpThreadsLeftExcept(Set<Thread> keep, Duration wait) throws InterruptedException {
        long deadline = System.nanoTime() + wait.toNanos();
        for (Thread t : qmpThreads()) {
            if (!keep.contains(t)) {
                t.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
            }
        }
        Set<Thread> left = qmpThreads();
        left.removeAll(keep);
        return left;
    }

    static long openFds() throws IOException {
        try (Stream<Path> fds = Files.list(FDS)) {
            return fds.count();
        }
    }
}
