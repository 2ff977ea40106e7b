package dev.ferry.vmm.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * virtio-blk against the host: 4 KiB random and 1 MiB sequential reads and writes on one raw
 * image, either from a guest driving the device through its ring ({@code path=ring}:
 * {@link RingBlkDriver} on the benchmark's thread, MMIO kicks through {@code machine.mmio()},
 * interrupts from the soft interrupt controller, the device's event loop and its {@value #IO_THREADS}
 * I/O threads doing pread/pwrite straight into guest RAM) or directly on the host with the same
 * syscalls at the same offsets ({@code path=host}: {@link HostDisk}). Scores are requests per
 * second (IOPS; for 1 MiB requests, MB/s = score x 1.048576). {@code ferry bench disk} runs it
 * and prints the ring/host ratios.
 *
 * <p>The image ({@value #IMAGE_MIB} MiB of random bytes, in the JVM's temp dir unless
 * {@code -p imageDir=...}) is written and synced at the start of every trial, so reads are served
 * from the page cache and writes land in it; what is measured is the cost of the path, not of the
 * disk. (A write still goes through the file system: on ext4 it can wait for a journal commit
 * another process's fsync started.) Each invocation is one batch
 * of requests ({@value #RANDOM_BATCH} random, or {@value #SEQUENTIAL_BATCH} sequential = one pass
 * over the image) with {@code depth} in flight; the pipeline drains only at the batch's end.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx512m"})
public class DiskBenchmark {
    static final int IMAGE_MIB = 256;
    /** The device's I/O threads, and the host baseline's threads at depth > 1 (this machine's 2 cores). */
    static final int IO_THREADS = 2;
    static final int RANDOM_BATCH = 4096;
    static final int SEQUENTIAL_BATCH = 256;
    private static final long MiB = 1L << 20;

    /** {@code ring}: a guest through virtio-blk; {@code host}: pread/pwrite on the image directly. */
    @Param({"ring", "host"})
    public String path;

    /** Requests in flight. */
    @Param({"32", "1"})
    public int depth;

    /** Where the image lives: the JVM's temp dir, or a directory (e.g. {@code /dev/shm}: tmpfs, no journal). */
    @Param({"java.io.tmpdir"})
    public String imageDir;

    private Path image;
    private DiskPattern random4k;
    private DiskPattern sequential1m;
    private long next;

    private RingDisk ring;
    private HostDisk host;

    @Setup(Level.Trial)
    public void start() throws Exception {
        long bytes = IMAGE_MIB * MiB;
        Path dir = Path.of(imageDir.equals("java.io.tmpdir") ? System.getProperty("java.io.tmpdir") : imageDir);
        image = RawImageFile.create(dir, "ferry-bench-disk", bytes, true, 0xD15C);
        random4k = DiskPattern.random4k(bytes);
        sequential1m = DiskPattern.sequential1m(bytes);
        if (path.equals("host")) {
            host = new HostDisk(image, depth, IO_THREADS, DiskPattern.MiB1);
            return;
        }
        if (!path.equals("ring")) {
            throw new IllegalArgumentException("path '" + path + "' is neither ring nor host");
        }
        ring = new RingDisk(image, depth, DiskPattern.MiB1, IO_THREADS);
    }

    private void io(DiskPattern pattern, int count, boolean write) throws InterruptedException {
        if (ring != null) {
            ring.driver().run(pattern, next, count, write);
        } else {
            host.run(pattern, next, count, write);
        }
        next += count;
    }

    @Benchmark
    @OperationsPerInvocation(RANDOM_BATCH)
    public void randomRead4k() throws InterruptedException {
        io(random4k, RANDOM_BATCH, false);
    }

    @Benchmark
    @OperationsPerInvocation(RANDOM_BATCH)
    public void randomWrite4k() throws InterruptedException {
        io(random4k, RANDOM_BATCH, true);
    }

    @Benchmark
    @OperationsPerInvocation(SEQUENTIAL_BATCH)
    public void sequentialRead1m() throws InterruptedException {
        io(sequential1m, SEQUENTIAL_BATCH, false);
    }

    @Benchmark
    @OperationsPerInvocation(SEQUENTIAL_BATCH)
    public void sequentialWrite1m() throws InterruptedException {
        io(sequential1m, SEQUENTIAL_BATCH, true);
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        try {
            if (ring != null) {
                RingBlkDriver driver = ring.driver();
                Map<String, Object> c = ring.counters();
                System.out.printf("%n  [ring depth %d] %d requests: %.3f kicks and %.3f interrupts per request, "
                                + "%d waits for an interrupt longer than 10 ms; device: %s requests, %s%n", depth, next,
                        driver.kicks() / (double) next, driver.interrupts() / (double) next, driver.waitTimeouts(),
                        c.get("requests"), c.get("by-type"));
            } else {
                System.out.printf("%n  [host depth %d] %d requests on %d thread(s)%n", depth, next, host.threads());
            }
        } finally {
            if (ring != null) {
                ring.close();
            }
            if (host != null) {
                host.close();
            }
            Files.deleteIfExists(image);
        }
    }
}
