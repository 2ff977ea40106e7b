package dev.ferry.vmm.qmp;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.ConnectException;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Objects;
import java.util.Set;

/**
 * The QMP server's socket file: who may replace what, and a file mode of 0600 from the first
 * moment anyone can connect.
 *
 * <p>bind(2) creates the file with the process umask, so binding at the final path and then
 * chmod-ing would leave a window in which other users could connect. Instead the socket is bound
 * inside a fresh 0700 directory next to the target (nobody else can reach it there), chmod-ed to
 * 0600, then renamed over the target in one step, which also replaces a stale socket atomically.
 * Only when that private path would not fit in {@code sun_path} is the socket bound in place and
 * chmod-ed right after.
 *
 * <p>At the target path a missing file or a stale socket (one that refuses connections) is fine;
 * anything else is refused: a regular file, directory or symlink ("not a socket"), or a socket a
 * live process serves. On removal the file is deleted only if it is still the one this server
 * created (same inode), so a successor's socket is never taken away.
 *
 * <p>Thread: whichever thread creates or closes the server.
 */
final class QmpSocketFile {
    /** {@code sizeof(sockaddr_un.sun_path)} minus the terminating NUL. */
    private static final int MAX_SOCKET_PATH_BYTES = 107;
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;
    private static final Set<PosixFilePermission> OWNER_RW = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> OWNER_RWX = PosixFilePermissions.fromString("rwx------");
    private static final Logger LOG = LoggerFactory.getLogger(QmpSocketFile.class);

    private final Path target;
    private final Path privateDir; // null when binding in place
    private final Path bindPath;
    private Object inode; // BasicFileAttributes.fileKey() once published

    private QmpSocketFile(Path target, Path privateDir, Path bindPath) {
        this.target = target;
        this.privateDir = privateDir;
        this.bindPath = bindPath;
    }

    /** Checks what is at {@code target} and chooses where to bind. */
    static QmpSocketFile prepare(Path target) throws IOException {
        Path path = target.toAbsolutePath().normalize();
        Path parent = path.getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            throw new NoSuchFileException(String.valueOf(parent), null, "directory for the QMP socket does not exist");
        }
        boolean stale = checkReplaceable(path);
        Path dir = Files.createTempDirectory(parent, ".qmp-", PosixFilePermissions.asFileAttribute(OWNER_RWX));
        Path inside = dir.resolve("s");
        if (inside.toString().getBytes(StandardCharsets.UTF_8).length <= MAX_SOCKET_PATH_BYTES) {
            return new QmpSocketFile(path, dir, inside);
        }
        Files.delete(dir);
        if (stale) {
            Files.deleteIfExists(path);
        }
        return new QmpSocketFile(path, null, path);
    }

    /** The final socket path. */
    Path target() {
        return target;
    }

    /** Where to bind the listening socket. */
    Path bindPath() {
        return bindPath;
    }

    /** After bind: restricts the socket to its owner and puts it at the target path. */
    void publish() throws IOException {
        Files.setPosixFilePermissions(bindPath, OWNER_RW);
        if (privateDir != null) {
            Files.move(bindPath, target, StandardCopyOption.ATOMIC_MOVE);
            Files.delete(privateDir);
        }
        inode = attributes(target).fileKey();
    }

    /** Deletes the private directory if left over, and the socket file if it is still ours. */
    void remove() {
        try {
            if (privateDir != null) {
                Files.deleteIfExists(bindPath);
                Files.deleteIfExists(privateDir);
            }
            if (inode != null && Files.exists(target, LinkOption.NOFOLLOW_LINKS)
                    && Objects.equals(attributes(target).fileKey(), inode)) {
                Files.delete(target);
            }
        } catch (NoSuchFileException e) {
            // already gone (Netty deletes a socket it bound in place when its channel closes)
        } catch (IOException e) {
            LOG.warn("QMP socket {}: could not remove it: {}", target, e.toString());
        }
    }

    /** True if a stale socket is in the way, false if nothing is; throws if it must not be replaced. */
    private static boolean checkReplaceable(Path path) throws IOException {
        int mode;
        try {
            mode = (Integer) Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        } catch (NoSuchFileException e) {
            return false;
        }
        if ((mode & S_IFMT) != S_IFSOCK) {
            throw new FileAlreadyExistsException(path.toString(), null,
                    "exists and is not a socket; refusing to replace it with the QMP socket");
        }
        try {
            SocketChannel.open(UnixDomainSocketAddress.of(path)).close();
        } catch (ConnectException e) {
            return true; // nobody listens: left behind by a process that died
        }
        throw new FileAlreadyExistsException(path.toString(), null,
                "a running process serves this socket; stop it or choose another QMP socket path");
    }

    private static BasicFileAttributes attributes(Path path) throws IOException {
        return Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
    }
}
