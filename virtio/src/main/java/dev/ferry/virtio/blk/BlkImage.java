package dev.ferry.virtio.blk;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A raw disk image file: data moves between it and guest RAM with pread/pwrite straight into the
 * guest's pages (no heap copy). Owns the file descriptor.
 *
 * <h2>Shared storage</h2>
 * On a live migration both VMMs open the same image. The destination's image starts
 * <em>inactive</em> (QEMU's BDRV_O_INACTIVE): any write while inactive is refused, so a
 * migration that fails before the destination runs never leaves a destination write in the
 * image; {@link #activate()} runs when the destination VM first starts. The source flushes at
 * stop ({@link #flush()}), before the destination can be activated.
 *
 * <p>Thread-safe: positional I/O from the device's I/O threads; flags are volatile.
 */
final class BlkImage implements AutoCloseable {
    private final Path path;
    private final Fd fd;
    /** Grows only ({@link #grow}, {@link #adoptGrowth}); requests check their range against it when they run. */
    private volatile long size;
    private final boolean readOnly;
    private volatile boolean active;
    /** A zeroed native page for WRITE_ZEROES, allocated once. */
    private final long zeroPage;
    private static final int ZERO_CHUNK = 64 * 1024;

    private BlkImage(Path path, Fd fd, long size, boolean readOnly, boolean active) {
        this.path = path;
        this.fd = fd;
        this.size = size;
        this.readOnly = readOnly;
        this.active = active;
        this.zeroPage = dev.ferry.core.sys.NativeMemory.allocate(ZERO_CHUNK);
    }

    /**
     * Opens {@code path}; a missing, unreadable, unwritable (unless read-only), empty or
     * non-sector-multiple image is an {@link IOException} naming the path.
     *
     * @param active false on a migration destination: writes are refused until {@link #activate()}
     */
    static BlkImage open(Path path, boolean readOnly, boolean active) throws IOException {
        if (!Files.exists(path)) {
            throw new IOException("disk image " + path + " does not exist");
        }
        if (!Files.isRegularFile(path)) {
            throw new IOException("disk image " + path + " is not a regular file");
        }
        Fd fd;
        try {
            fd = Sys.open(path.toString(), (readOnly ? Linux.O_RDONLY : Linux.O_RDWR) | Linux.O_CLOEXEC);
        } catch (NativeCallException e) {
            throw new IOException("cannot open disk image " + path + (readOnly ? " for reading" : " for reading and writing")
                    + ": " + e.getMessage(), e);
        }
        long size = Files.size(path);
        if (size < BlkRequest.SECTOR || size % BlkRequest.SECTOR != 0) {
            fd.close();
            throw new IOException("disk image " + path + " is " + size + " bytes; it must be a non-zero multiple of "
                    + BlkRequest.SECTOR);
        }
        return new BlkImage(path, fd, size, readOnly, active);
    }

    Path path() {
        return path;
    }

    long size() {
        return size;
    }

    boolean readOnly() {
        return readOnly;
    }

    boolean active() {
        return active;
    }

    /** The destination VM starts: from now on this VMM owns the image. */
    void activate() {
        active = true;
    }

    /** Reads {@code length} bytes at {@code offset} into guest RAM at {@code gpa}. */
    void read(DeviceMemory memory, long offset, long gpa, int length) throws IOException {
        long done = 0;
        while (done < length) {
            long n;
            try {
                n = memory.readFromFile(fd, offset + done, gpa + done, (int) (length - done));
            } catch (NativeCallException e) {
                throw new IOException(path + ": read of " + length + " bytes at " + offset + " failed: " + e.getMessage(), e);
            }
            if (n == 0) {
                throw new IOException(path + ": read at " + (offset + done) + " hit the end of the image");
            }
            done += n;
        }
    }

    /** Writes {@code length} bytes of guest RAM at {@code gpa} to the image at {@code offset}. */
    void write(DeviceMemory memory, long offset, long gpa, int length) throws IOException {
        requireWritable();
        long done = 0;
        while (done < length) {
            try {
                done += memory.writeToFile(fd, offset + done, gpa + done, (int) (length - done));
            } catch (NativeCallException e) {
                throw new IOException(path + ": write of " + length + " bytes at " + offset + " failed: " + e.getMessage(), e);
            }
        }
    }

    /** Zeroes {@code [offset, offset + length)} of the image. */
    void writeZeroes(long offset, long length) throws IOException {
        requireWritable();
        long done = 0;
        while (done < length) {
            int n = (int) Math.min(ZERO_CHUNK, length - done);
            try {
                done += Sys.pwrite(fd, zeroPage, n, offset + done);
            } catch (NativeCallException e) {
                throw new IOException(path + ": zeroing " + length + " bytes at " + offset + " failed: " + e.getMessage(), e);
            }
        }
    }

    /**
     * Grows the image to {@code bytes} (ftruncate: the new sectors read as zeroes). Shrinking is
     * refused: a request in flight may address the sectors that would go, and a guest's file
     * system holds data there.
     */
    synchronized void grow(long bytes) throws IOException {
        if (readOnly) {
            throw new IOException(path + " is read-only; a read-only disk is not resized");
        }
        if (bytes % BlkRequest.SECTOR != 0) {
            throw new IOException(path + ": " + bytes + " bytes is not a whole number of " + BlkRequest.SECTOR + "-byte sectors");
        }
        if (bytes < size) {
            throw new IOException(path + ": shrinking a disk in use from " + size + " to " + bytes
                    + " bytes would cut off the guest's data; only growing is supported");
        }
        if (bytes == size) {
            return;
        }
        try {
            Sys.ftruncate(fd, bytes);
        } catch (NativeCallException e) {
            throw new IOException(path + ": growing to " + bytes + " bytes failed: " + e.getMessage(), e);
        }
        size = bytes;
    }

    /**
     * The image file as it is now, when another VMM sharing it (a migration's source) grew it to
     * {@code bytes}: true when the file holds exactly that many bytes, which this image then
     * serves; false (nothing changes) otherwise.
     */
    synchronized boolean adoptGrowth(long bytes) {
        long onDisk;
        try {
            onDisk = Sys.fstatSizeAndAllocated(fd)[0];
        } catch (NativeCallException e) {
            return false;
        }
        if (onDisk != bytes || bytes < size) {
            return false;
        }
        size = bytes;
        return true;
    }

    /** Makes every completed write durable (fdatasync). */
    void flush() throws IOException {
        if (readOnly) {
            return;
        }
        try {
            Sys.fdatasync(fd);
        } catch (NativeCallException e) {
            throw new IOException(path + ": flush failed: " + e.getMessage(), e);
        }
    }

    private void requireWritable() throws IOException {
        if (readOnly) {
            throw new IOException(path + " is read-only");
        }
        if (!active) {
            throw new IllegalStateException(path + ": write while the image is inactive (an incoming migration has "
                    + "not handed the disk over yet)");
        }
    }

    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            fd.close();
            dev.ferry.core.sys.NativeMemory.free(zeroPage);
        }
    }
}
