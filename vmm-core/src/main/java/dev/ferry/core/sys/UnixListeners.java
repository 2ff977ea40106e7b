package dev.ferry.core.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether a UNIX socket path is being listened on. A server's socket file appears at bind(),
 * before listen(), and a connect in between is refused (ECONNREFUSED); a peer started as a
 * process (qemu-storage-daemon, QEMU) is ready only once this says so.
 */
public final class UnixListeners {
    /** {@code __SO_ACCEPTCON}: the flag /proc/net/unix shows for a listening socket. */
    private static final long SO_ACCEPTCON = 0x10000;

    private UnixListeners() {
    }

    /** True when some socket bound at {@code path} listens (read from /proc/net/unix). */
    public static boolean listening(Path path) throws IOException {
        String abs = path.toAbsolutePath().toString();
        String asGiven = path.toString(); // a peer that bound a relative path shows it as it was given
        for (String line : Files.readAllLines(Path.of("/proc/net/unix"))) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 8 && (f[7].equals(abs) || f[7].equals(asGiven)) && (Long.parseLong(f[3], 16) & SO_ACCEPTCON) != 0) {
                return true;
            }
        }
        return false;
    }
}
