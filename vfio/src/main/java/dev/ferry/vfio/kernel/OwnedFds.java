package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.NativeCallException;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * The fds one VFIO device holds — container, group, iommufd, device — in the order they were
 * opened, closed once each in reverse order: by the device's {@code close()}, or by the opening
 * sequence when a later step fails. Not thread-safe; its owner serializes.
 */
final class OwnedFds {
    private record Entry(int fd, String what) {
    }

    private final VfioSyscalls sys;
    private final Deque<Entry> open = new ArrayDeque<>();

    OwnedFds(VfioSyscalls sys) {
        this.sys = sys;
    }

    /** Takes ownership of {@code fd}; {@code what} names it in errors (a path, "device fd"). */
    int add(int fd, String what) {
        open.push(new Entry(fd, what));
        return fd;
    }

    boolean isEmpty() {
        return open.isEmpty();
    }

    /**
     * Closes every fd, newest first, each exactly once. A failing close does not stop the
     * others; the failures come back (empty when all closed cleanly).
     */
    List<NativeCallException> closeAll() {
        List<NativeCallException> failures = new ArrayList<>();
        while (!open.isEmpty()) {
            Entry e = open.pop();
            try {
                sys.close(e.fd());
            } catch (NativeCallException ex) {
                failures.add(ex);
            }
        }
        return failures;
    }
}
