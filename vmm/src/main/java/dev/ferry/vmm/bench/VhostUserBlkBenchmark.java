package dev.ferry.vmm.bench;

import dev.ferry.vhostuser.check.VhostUserBlkLoad;
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
import java.util.concurrent.TimeUnit;

/**
 * virtio-blk served by qemu-storage-daemon over vhost-user against Ferry's built-in virtio-blk, on
 * the same kind of raw image with the same offsets in the same order: 4 KiB random and 64 KiB
 * sequential reads and writes at {@code depth} in flight. {@code path=vhost-user}: the vhost-user
 * check's driver ({@link VhostUserBlkLoad}) on the benchmark's thread, kicks and calls by eventfd,
 * the daemon doing the I/O into the shared memfd guest; {@code path=vhost-user-logged}: the same
 * with migration logging on (shared log, LOG_ALL, used-ring logging) and the log harvested after
 * every batch, as a migration's sync does; {@code path=ring}: Ferry's own device as
 * {@link DiskBenchmark} drives it. Scores are requests per second; {@code ferry bench vhost-user-blk}
 * prints them with MB/s and the same-run ratios.
 *
 * <p>The image ({@value #IMAGE_MIB} MiB of random bytes) is written and synced at the start of
 * every trial and read through the page cache by both devices (the daemon's {@code driver=file}
 * without {@code cache.direct}, Ferry's pread/pwrite).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx512m"})
public class VhostUserBlkBenchmark {
    static final int IMAGE_MIB = 128;
    static final int KiB64 = 64 << 10;
    static final int RANDOM_BATCH = 2048;
    static final int SEQUENTIAL_BATCH = 512;
    private static final long MiB = 1L << 20;

    /**
     * {@code vhost-user}, {@code vhost-user-logged} (qemu-storage-daemon), {@code ferry-backend},
     * {@code ferry-backend-inflight} (Ferry's back-end library in this process, without and with
     * the in-flight region a front-end hands it) or {@code ring} (Ferry's built-in virtio-blk).
     */
    @Param({"vhost-user", "vhost-user-logged", "ferry-backend", "ferry-backend-inflight", "ring"})
    public String path;

    /** Requests in flight. */
    @Param({"32"})
    public int depth;

    private Path image;
    private DiskPattern random4k;
    private DiskPattern sequential64k;
    private long next;
    private StorageDaemonProcess daemon;
    private dev.ferry.vhostuser.backend.VhostUserBackend backend;
    private VhostUserBlkLoad load;
    private RingDisk ring;

    @Setup(Level.Trial)
    public void start() throws Exception {
        if (!java.util.List.of("vhost-user", "vhost-user-logged", "ferry-backend", "ferry-backend-inflight", "ring")
                .contains(path)) {
            throw new IllegalArgumentException("path '" + path
                    + "': vhost-user, vhost-user-logged, ferry-backend, ferry-backend-inflight or ring");
        }
        long bytes = IMAGE_MIB * MiB;
        image = RawImageFile.create(Path.of(System.getProperty("java.io.tmpdir")), "ferry-bench-vub", bytes, true, 0xB10C);
        random4k = DiskPattern.random4k(bytes);
        sequential64k = new DiskPattern(KiB64, false, bytes / KiB64);
        try {
            if (path.equals("ring")) {
                ring = new RingDisk(image, depth, KiB64, DiskBenchmark.IO_THREADS);
            } else if (path.startsWith("ferry-backend")) {
                Path sock = Files.createTempDirectory("ferry-bench-vub").resolve("vub.sock");
                backend = dev.ferry.vhostuser.backend.VhostUserBackend.serveBlk(
                        dev.ferry.virtio.blk.BlkOptions.of(image),
                        dev.ferry.vhostuser.backend.BackendOptions.server(sock));
                load = VhostUserBlkLoad.connect(sock, KiB64, depth, false, path.endsWith("-inflight"));
            } else {
                daemon = StorageDaemonProcess.start(image);
                load = VhostUserBlkLoad.connect(daemon.socket(), KiB64, depth, path.equals("vhost-user-logged"));
            }
        } catch (Exception | Error e) {
            stop();
            throw e;
        }
    }

    private void io(DiskPattern pattern, int count, boolean write) throws InterruptedException {
        if (load != null) {
            load.run(pattern.ioSize(), pattern::offset, next, count, write);
        } else {
            ring.driver().run(pattern, next, count, write);
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
    public void sequentialRead64k() throws InterruptedException {
        io(sequential64k, SEQUENTIAL_BATCH, false);
    }

    @Benchmark
    @OperationsPerInvocation(SEQUENTIAL_BATCH)
    public void sequentialWrite64k() throws InterruptedException {
        io(sequential64k, SEQUENTIAL_BATCH, true);
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        try {
            if (load != null) {
                System.out.printf("%n  [%s depth %d] %d requests, %d pages named by the back-end's log%n", path, depth,
                        next, load.pagesLogged());
                load.close();
            }
            if (ring != null) {
                ring.close();
            }
        } finally {
            if (daemon != null) {
                daemon.close();
            }
            if (backend != null) {
                Path sock = backend.socket();
                backend.close();
                Files.deleteIfExists(sock);
                Files.deleteIfExists(sock.getParent());
            }
            Files.deleteIfExists(image);
        }
    }
}
