package dev.ferry.vmm.bench;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Sys;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The disk benchmark's baseline: the same requests done directly on the host with the syscalls
 * virtio-blk's I/O threads use — pread(2)/pwrite(2) of the whole request, into or out of memfd
 * memory of the same kind as guest RAM — with no ring, no event loop and no interrupt.
 *
 * <p>A synchronous syscall has exactly one request in flight per thread, so "depth d" here is
 * {@code min(d, threads)} threads pulling request indices from one counter: the calling thread and
 * {@code threads - 1} helpers. With {@code threads} = the device's I/O threads (and this machine's
 * cores) it is the best the host does with the same parallelism the device has.
 *
 * <p>{@link #run} is called from one thread at a time.
 */
final class HostDisk implements AutoCloseable {
    private final Fd fd;
    private final int threads;
    private final int maxIoSize;
    private final GuestMemory buffers;
    private final ExecutorService helpers;

    HostDisk(Path image, int depth, int maxThreads, int maxIoSize) {
        this.threads = Math.max(1, Math.min(depth, maxThreads));
        this.maxIoSize = maxIoSize;
        this.fd = Sys.open(image.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
        this.buffers = GuestMemory.ofSize((long) threads * maxIoSize);
        for (long at = 0; at < buffers.totalSize(); at += 8) {
            dev.ferry.core.sys.NativeMemory.putLong(buffers.hostAddress(new Gpa(at), 8), at * 0x9E3779B97F4A7C15L);
        }
        this.helpers = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(r, "ferry-bench-host-io");
            t.setDaemon(true);
            return t;
        });
    }

    int threads() {
        return threads;
    }

    /** Requests {@code first .. first + count - 1} of {@code pattern}, on {@link #threads()} threads. */
    void run(DiskPattern pattern, long first, int count, boolean write) throws InterruptedException {
        int ioSize = pattern.ioSize();
        if (ioSize > maxIoSize) {
            throw new IllegalArgumentException("request size " + ioSize + " above " + maxIoSize);
        }
        AtomicLong next = new AtomicLong(first);
        long end = first + count;
        List<Future<?>> others = new ArrayList<>(threads - 1);
        for (int t = 1; t < threads; t++) {
            long buf = buffers.hostAddress(new Gpa((long) t * maxIoSize), ioSize);
            others.add(helpers.submit(() -> loop(pattern, next, end, buf, write)));
        }
        loop(pattern, next, end, buffers.hostAddress(new Gpa(0), ioSize), write);
        for (Future<?> f : others) {
            try {
                f.get();
            } catch (ExecutionException e) {
                throw new IllegalStateException("host I/O on " + fd + " failed: " + e.getCause(), e.getCause());
            }
        }
    }

    private void loop(DiskPattern pattern, AtomicLong next, long end, long buf, boolean write) {
        int ioSize = pattern.ioSize();
        long i;
        while ((i = next.getAndIncrement()) < end) {
            long off = pattern.offset(i);
            long n = write ? Sys.pwrite(fd, buf, ioSize, off) : Sys.pread(fd, buf, ioSize, off);
            if (n != ioSize) {
                throw new IllegalStateException((write ? "pwrite" : "pread") + " of " + ioSize + " bytes at " + off
                        + " on " + fd + " moved " + n);
            }
        }
    }

    @Override
    public void close() {
        if (helpers != null) {
            helpers.shutdownNow();
        }
        fd.close();
        buffers.close();
    }
}
