package dev.ferry.migration.transport;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Objects;

/**
 * The filesystem side of a listening UNIX socket: what may be at the path before bind, who may
 * connect after it, and removal when the listener closes.
 *
 * <ul>
 *   <li>Before bind: a missing path is fine; a socket nobody listens on is stale and removed (as
 *       QEMU does); a live socket or anything that is not a socket (a regular file, a symlink, a
 *       directory) is refused, never replaced.</li>
 *   <li>After bind: permissions become 0600, so only the owner can connect. Until the chmod the
 *       mode comes from the umask; with the usual 022 nobody else has the write permission that
 *       connect(2) needs even in that window.</li>
 *   <li>On close: the path is removed if it is still the socket this listener created (same
 *       inode); Netty's server channel also unlinks it, so this mostly confirms.</li>
 * </ul>
 *
 * <p>Threads: the caller of listen and the caller of the listener's close.
 */
final class UnixSocketFile {
    private static final Logger LOG = LoggerFactory.getLogger(UnixSocketFile.class);
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;

    private final Path path;
    private final String uri;
    private volatile Object boundKey;

    private UnixSocketFile(Path path, String uri) {
        this.path = path;
        this.uri = uri;
    }

    /** Checks what is at {@code path} and clears a stale socket, so bind can succeed. */
    static UnixSocketFile prepare(Path path, String uri) throws IOException {
        if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            if (!isSocket(path)) {
                throw new IOException("cannot listen on " + uri + ": " + path
                        + " exists and is not a socket; refusing to replace it (remove it or pick another path)");
            }
            if (hasListener(path)) {
                throw new IOException("cannot listen on " + uri + ": another process is listening on " + path);
            }
            Files.deleteIfExists(path);
        }
        return new UnixSocketFile(path, uri);
    }

    /** After bind: owner-only permissions, and remember which inode is ours. */
    void restrictToOwner() throws IOException {
        try {
            Files.setPosixFilePermissions(path, EnumSet.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE));
            boundKey = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        } catch (IOException e) {
            throw new IOException("cannot restrict " + uri + " to its owner (chmod 0600 " + path + "): " + e.getMessage(), e);
        }
    }

    /** After the server channel closed: removes the socket if it is still ours. Never throws. */
    void remove() {
        Object key = boundKey;
        if (key == null) {
            return;
        }
        try {
            Object current = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
            if (Objects.equals(current, key) && isSocket(path)) {
                Files.deleteIfExists(path);
            }
        } catch (NoSuchFileException e) {
            // already gone (Netty unlinks it when the server channel closes)
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}: could not remove socket file {}: {}", uri, path, e.toString());
        }
    }

    static boolean isSocket(Path path) throws IOException {
        try {
            int mode = (Integer) Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            return (mode & S_IFMT) == S_IFSOCK;
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return false; // no "unix" attribute view: cannot tell a socket from a FIFO, so never replace
        }
    }

    /** Whether a process accepts connections on the socket at {@code path} (a stale one refuses). */
    private static boolean hasListener(Path path) {
        try (SocketChannel probe = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            probe.connect(UnixDomainSocketAddress.of(path));
            return true;
        } catch (IOException e) {
            return false;
        }
    }
}
