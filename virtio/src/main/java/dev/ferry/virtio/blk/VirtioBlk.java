package dev.ferry.virtio.blk;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.Segment;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * virtio-blk (device ID 2) on a raw image: IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES;
 * read-only mode; capacity, seg_max, blk_size and writeback in the config space.
 *
 * <h2>Where the work happens</h2>
 * The event loop pops requests when the driver kicks, at most {@link BlkOptions#depth()} in
 * flight across queues, and hands each to a fixed pool of I/O threads that move data between the
 * image and guest RAM ({@link BlkImage}); completions return to the loop, which writes the status
 * byte, pushes the used element and interrupts once per batch. Nothing runs on a vCPU thread.
 *
 * <h2>Stopping, errors and migration</h2>
 * {@link #quiesce} (VM stop) waits for every request in flight and completes it to the guest —
 * QEMU's drain — then flushes the image. A request whose I/O failed completes with IOERR under
 * the {@code report} policy; under {@code stop} it is parked, the VM stops (io-error, with a
 * BLOCK_IO_ERROR event) and the request is retried when the VM runs again — on this VMM after
 * {@code cont}, or on a migration destination, which gets the parked requests in the device part
 * of the stream (a retried request is read through guest RAM by its segments, so a chain restored
 * from the stream runs like a popped one):
 * <pre>
 *   per parked request:  u8 1 | be32 queue | be16 head | be16 nread | be16 nwrite
 *                        | nread x (be64 gpa | be32 len) | nwrite x (be64 gpa | be32 len)
 *   end:                 u8 0
 * </pre>
 * (QEMU writes a raw host-endian VirtQueueElement there; Ferry writes the same facts portably.)
 * On a destination the image is inactive until the VM first runs (the first queue notification
 * after {@link #start}), so a failed migration — even one whose destination began to start and
 * rolled back — never leaves a destination write in it.
 */
public final class VirtioBlk implements VirtioDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlk.class);
    public static final int F_SEG_MAX = 2;
    public static final int F_RO = 5;
    public static final int F_BLK_SIZE = 6;
    public static final int F_FLUSH = 9;
    public static final int F_CONFIG_WCE = 11;
    public static final int F_MQ = 12;
    public static final int F_DISCARD = 13;
    public static final int F_WRITE_ZEROES = 14;
    /** Most parked requests a stream may carry per queue (a queue holds no more). */
    private static final int MAX_SEGMENTS = 1024;

    private final String id;
    private final BlkOptions options;
    private final BlkImage image;
    private final IoErrorStop stopper;
    private final ExecutorService io;
    private volatile boolean writeback = true;

    // Loop-thread state (ctx is read by grow from any thread).
    private volatile VirtioContext ctx;
    private boolean stopping = true;
    /** Started, and the image activation and parked retries wait for the first queue notification. */
    private boolean resumePending;
    private final boolean[] kickPending;
    private final List<Parked> parked = new ArrayList<>();
    /** Parked requests a load read, until the transport commits the load (migration thread). */
    private List<Parked> loadedParked;
    private final AtomicInteger inflight = new AtomicInteger();
    private final Queue<Done> completions = new ConcurrentLinkedQueue<>();
    private final Object drained = new Object();

    // Statistics, any thread.
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong bytesRead = new AtomicLong();
    private final AtomicLong bytesWritten = new AtomicLong();
    private final AtomicLong ioErrors = new AtomicLong();
    private final AtomicLong drainedAtStop = new AtomicLong();
    private volatile int carriedOut;
    private volatile int carriedIn;
    private final Map<String, AtomicLong> byType = new java.util.concurrent.ConcurrentHashMap<>();

    /** A request waiting for a retry: its queue and chain. */
    record Parked(int queue, DescriptorChain chain) {
    }

    /** A finished request on its way back to the loop. */
    private record Done(int queue, DescriptorChain chain, int status, int written, boolean park) {
    }

    /**
     * Opens the image. {@code incoming}: this VMM is a migration destination, so the image stays
     * inactive until the VM starts.
     *
     * @throws IOException naming the path when the image is missing, unreadable or malformed
     */
    public VirtioBlk(String id, BlkOptions options, boolean incoming, IoErrorStop stopper) throws IOException {
        this.id = id;
        this.options = options;
        this.stopper = stopper;
        this.image = BlkImage.open(options.image(), options.readOnly(), !incoming);
        this.kickPending = new boolean[options.queues()];
        AtomicInteger n = new AtomicInteger();
        java.util.concurrent.ThreadPoolExecutor pool = (java.util.concurrent.ThreadPoolExecutor)
                Executors.newFixedThreadPool(options.ioThreads(), r -> {
                    Thread t = new Thread(r, "ferry-blk-" + id + "-io-" + n.getAndIncrement());
                    t.setDaemon(true);
                    return t;
                });
        // All of them now: a pool that starts a thread per request until it is full holds one
        // thread more or less depending on how requests overlapped, which a soak's resource
        // count reads as growth.
        pool.prestartAllCoreThreads();
        this.io = pool;
    }

    public Path imagePath() {
        return image.path();
    }

    /** The disk's size in bytes. */
    public long capacityBytes() {
        return image.size();
    }

    /**
     * Grows the disk to {@code bytes} under a running guest (QMP {@code block_resize}; a
     * back-end's owner resizing what it serves): the image file grows, the config space's
     * capacity follows, and a started device raises a config-change interrupt so the driver
     * reads it (through a vhost-user back-end, CONFIG_CHANGE_MSG to the front-end). Any thread.
     *
     * @throws IOException naming the image when it is read-only, the size is not whole sectors,
     *                     smaller than now (shrinking is refused) or the file cannot grow
     */
    public void grow(long bytes) throws IOException {
        long before = image.size();
        image.grow(bytes);
        if (bytes == before) {
            return;
        }
        VirtioContext c = ctx;
        LOG.info("{}: grown from {} to {} bytes{}", id, before, bytes, c != null ? "; the driver is told" : "");
        if (c != null) {
            c.configChanged();
        }
    }

    @Override
    public String name() {
        return "virtio-blk";
    }

    @Override
    public int deviceId() {
        return Virtio.ID_BLOCK;
    }

    @Override
    public int stateVersion() {
        return 2;
    }

    @Override
    public long features() {
        long f = Virtio.bit(F_SEG_MAX) | Virtio.bit(F_BLK_SIZE) | Virtio.bit(F_FLUSH) | Virtio.bit(F_CONFIG_WCE);
        if (options.readOnly()) {
            f |= Virtio.bit(F_RO);
        } else {
            f |= Virtio.bit(F_DISCARD) | Virtio.bit(F_WRITE_ZEROES);
        }
        if (options.queues() > 1) {
            f |= Virtio.bit(F_MQ);
        }
        return f;
    }

    @Override
    public int queueCount() {
        return options.queues();
    }

    @Override
    public int queueMaxSize() {
        return options.queueSize();
    }

    @Override
    public byte[] config() {
        return new BlkConfig(image.size() / BlkRequest.SECTOR, options.queueSize() - 2, BlkRequest.SECTOR,
                options.queues(), writeback).encode();
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        if (offset == BlkConfig.WRITEBACK_OFFSET && size == 1) {
            writeback = (value & 0xff) != 0;
        }
    }

    @Override
    public void restoreConfig(byte[] config) throws MigrationException {
        if (config.length < BlkConfig.SIZE) {
            throw new MigrationException(id + ": virtio-blk config of " + config.length + " bytes, expected "
                    + BlkConfig.SIZE);
        }
        long capacity = BlkConfig.capacityOf(config);
        // The source may have grown the shared image after this side opened it.
        if (capacity != image.size() / BlkRequest.SECTOR
                && !(capacity > 0 && capacity <= Long.MAX_VALUE / BlkRequest.SECTOR
                     && image.adoptGrowth(capacity * BlkRequest.SECTOR))) {
            throw new MigrationException(id + ": the source's disk has " + capacity + " sectors, " + image.path()
                    + " here has " + image.size() / BlkRequest.SECTOR + "; both sides must open the same image");
        }
        writeback = config[BlkConfig.WRITEBACK_OFFSET] != 0;
    }

    // ---- lifecycle (loop thread) ----

    /**
     * Arms the device; the image is taken over and parked requests are retried at the first queue
     * notification ({@link #resume}), when the VM surely runs: a destination whose start is rolled
     * back never activated or wrote the image it shares with the source.
     */
    @Override
    public void start(VirtioContext context) {
        this.ctx = context;
        this.stopping = false;
        this.resumePending = true;
    }

    /** Loop thread, the VM running: activate the image (a migration destination) and retry the parked requests. */
    private void resume() {
        resumePending = false;
        if (!image.active()) {
            image.activate();
        }
        if (!parked.isEmpty()) {
            List<Parked> retry = new ArrayList<>(parked);
            parked.clear();
            LOG.info("{}: retrying {} parked request(s)", id, retry.size());
            for (Parked p : retry) {
                String bad = outsideRam(p.chain());
                if (bad != null) {
                    // QEMU: mapping a loaded element fails -> virtio_error; nothing of it is retried.
                    ctx.deviceError("parked request head " + p.chain().head() + ": " + bad);
                    return;
                }
            }
            for (Parked p : retry) {
                submit(p.queue(), p.chain());
            }
        }
    }

    @Override
    public void queueNotified(int queue) {
        if (stopping || ctx == null) {
            return;
        }
        if (resumePending) {
            resume();
        }
        SplitVirtqueue vq = ctx.queue(queue);
        if (vq == null) {
            return;
        }
        while (inflight.get() < options.depth()) {
            DescriptorChain chain;
            try {
                chain = vq.pop();
            } catch (VirtqueueError e) {
                // Also reached from completeAll (a slot freed), where no transport catches it.
                kickPending[queue] = false;
                ctx.deviceError("queue " + queue + ": " + e.getMessage());
                return;
            }
            if (chain == null) {
                kickPending[queue] = false;
                return;
            }
            if (chain.readableBytes() < BlkRequest.HEADER || chain.writableBytes() < 1) {
                kickPending[queue] = false;
                ctx.deviceError("virtio-blk missing headers (head " + chain.head() + ": " + chain.readableBytes()
                        + " readable, " + chain.writableBytes() + " writable bytes)");
                return;
            }
            submit(queue, chain);
        }
        kickPending[queue] = true; // at the depth limit: pop the rest when a slot frees
    }

    private void submit(int queue, DescriptorChain chain) {
        inflight.incrementAndGet();
        requests.incrementAndGet();
        DeviceMemory memory = ctx.memory();
        var loop = ctx.loop();
        io.execute(() -> {
            Done d;
            try {
                d = execute(queue, chain, memory);
            } catch (RuntimeException e) {
                LOG.warn("{}: request failed unexpectedly: {}", id, e.toString());
                d = new Done(queue, chain, BlkRequest.S_IOERR, 1, false);
            }
            completions.add(d);
            synchronized (drained) {
                drained.notifyAll();
            }
            loop.execute(this::completeAll);
        });
    }

    /** On an I/O thread: parses and runs one request. */
    private Done execute(int queue, DescriptorChain chain, DeviceMemory memory) {
        BlkExecution x = new BlkExecution(id, chain, memory, image, options, writeback);
        int status = x.run();
        byType.computeIfAbsent(BlkRequest.typeName(x.type()), k -> new AtomicLong()).incrementAndGet();
        bytesRead.addAndGet(x.bytesRead());
        bytesWritten.addAndGet(x.bytesWritten());
        if (status == BlkRequest.S_IOERR && x.ioError() != null) {
            ioErrors.incrementAndGet();
            BlkOptions.ErrorPolicy policy = x.isWrite() ? options.werror() : options.rerror();
            if (policy == BlkOptions.ErrorPolicy.STOP) {
                stopper.stopForIoError(id, x.isWrite() ? "write" : "read", x.ioError());
                return new Done(queue, chain, status, 0, true);
            }
        }
        return new Done(queue, chain, status, x.deviceWritten(), false);
    }

    /** Loop thread: pushes every finished request, then interrupts once per queue touched. */
    private void completeAll() {
        if (ctx == null) {
            while (completions.poll() != null) {
                inflight.decrementAndGet(); // the driver reset the device: nothing to complete to
            }
            return;
        }
        SplitVirtqueue[] touched = new SplitVirtqueue[options.queues()];
        Done d;
        while ((d = completions.poll()) != null) {
            // A request leaves the depth budget only here, on the loop: a slot freed on an I/O
            // thread would let a kick pop the next chain before this completion is published.
            inflight.decrementAndGet();
            if (d.park()) {
                parked.add(new Parked(d.queue(), d.chain()));
                continue;
            }
            SplitVirtqueue vq = ctx.queue(d.queue());
            if (vq == null) {
                continue; // the driver reset the device meanwhile, or it needs a reset
            }
            writeStatus(d.chain(), d.status());
            vq.push(d.chain(), d.written());
            touched[d.queue()] = vq;
            if (ctx.loop().isPaused()) {
                drainedAtStop.incrementAndGet(); // the VM is stopping: this request completes as part of the drain
            }
        }
        for (int q = 0; q < touched.length; q++) {
            if (touched[q] != null) {
                touched[q].publish();
                ctx.notifyQueue(q);
            }
        }
        if (!stopping) {
            for (int q = 0; q < kickPending.length; q++) {
                if (kickPending[q]) {
                    queueNotified(q);
                }
            }
        }
    }

    /** The first segment of a chain restored from a stream that is not guest RAM, or null. */
    private String outsideRam(DescriptorChain chain) {
        for (List<Segment> segs : List.of(chain.readable(), chain.writable())) {
            for (Segment s : segs) {
                if (!ctx.memory().isRam(s.gpa(), s.length())) {
                    return "buffer " + s + " is not in RAM";
                }
            }
        }
        return null;
    }

    private void writeStatus(DescriptorChain chain, int status) {
        var w = chain.writable();
        var last = w.get(w.size() - 1);
        ctx.memory().writeU8(last.gpa() + last.length() - 1, status);
    }

    @Override
    public void quiesce() {
        stopping = true;
        drainInFlight();
        if (image.active() && !image.readOnly()) {
            try {
                image.flush();
            } catch (IOException e) {
                LOG.warn("{}: flush at stop failed: {}", id, e.getMessage());
            }
        }
        LOG.debug("{}: quiesced: {} parked, {} requests in all", id, parked.size(), requests.get());
    }

    /** Loop thread: waits for every request on the I/O threads and completes (or drops) each. */
    private void drainInFlight() {
        while (inflight.get() > 0) {
            synchronized (drained) {
                while (completions.isEmpty() && inflight.get() > 0) {
                    try {
                        drained.wait(100);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                }
            }
            completeAll();
        }
    }

    @Override
    public void reset() {
        stopping = true;
        ctx = null; // completions of requests still in flight are dropped: the rings are gone
        drainInFlight();
        parked.clear();
        resumePending = false;
        java.util.Arrays.fill(kickPending, false);
        writeback = true; // the power-on cache mode (QEMU: original_wce)
    }

    // ---- migration: the parked requests ----

    @Override
    public void save(SaveStream out) throws IOException {
        for (Parked p : parked) {
            out.putU8(1);
            out.putBe32(p.queue());
            out.putBe16(p.chain().head());
            out.putBe16(p.chain().readable().size());
            out.putBe16(p.chain().writable().size());
            for (var s : p.chain().readable()) {
                out.putBe64(s.gpa());
                out.putBe32((int) s.length());
            }
            for (var s : p.chain().writable()) {
                out.putBe64(s.gpa());
                out.putBe32((int) s.length());
            }
        }
        out.putU8(0);
        carriedOut = parked.size();
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        List<Parked> loaded = new ArrayList<>();
        while (true) {
            int marker = in.getU8();
            if (marker == 0) {
                break;
            }
            if (marker != 1) {
                throw new MigrationException(id + ": parked-request marker 0x" + Integer.toHexString(marker));
            }
            if (loaded.size() >= options.queues() * options.queueSize()) {
                throw new MigrationException(id + ": more parked requests than " + options.queues() + " queue(s) of "
                        + options.queueSize() + " can hold");
            }
            int queue = in.getBe32();
            if (queue < 0 || queue >= options.queues()) {
                throw new MigrationException(id + ": parked request on queue " + Integer.toUnsignedString(queue)
                        + "; this disk has " + options.queues());
            }
            int head = in.getBe16();
            int nr = in.getBe16();
            int nw = in.getBe16();
            if (head >= options.queueSize() || nr + nw > MAX_SEGMENTS || nw < 1) {
                throw new MigrationException(id + ": parked request head " + head + " with " + nr + " readable and "
                        + nw + " writable segments does not fit a queue of " + options.queueSize());
            }
            List<Segment> r = new ArrayList<>();
            List<Segment> w = new ArrayList<>();
            for (int i = 0; i < nr + nw; i++) {
                long gpa = in.getBe64();
                long len = Integer.toUnsignedLong(in.getBe32());
                (i < nr ? r : w).add(new Segment(gpa, len));
            }
            loaded.add(new Parked(queue, DescriptorChain.restored(head, r, w)));
        }
        loadedParked = loaded; // taken by commitLoad once the whole state checked out
    }

    @Override
    public void commitLoad() {
        List<Parked> loaded = loadedParked == null ? List.of() : loadedParked;
        loadedParked = null;
        parked.clear();
        parked.addAll(loaded);
        carriedIn = loaded.size();
    }

    /** Parked requests now (tests and reports). */
    public int parkedRequests() {
        return parked.size();
    }

    @Override
    public void describe(Map<String, Object> into) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("image", image.path().toString());
        d.put("read-only", options.readOnly());
        d.put("active", image.active());
        d.put("capacity", image.size());
        d.put("requests", requests.get());
        d.put("bytes-read", bytesRead.get());
        d.put("bytes-written", bytesWritten.get());
        d.put("io-errors", ioErrors.get());
        d.put("in-flight", inflight.get());
        d.put("drained-at-stop", drainedAtStop.get());
        d.put("parked", parked.size());
        d.put("carried-out", carriedOut);
        d.put("carried-in", carriedIn);
        Map<String, Object> types = new LinkedHashMap<>();
        byType.forEach((k, v) -> types.put(k, v.get()));
        d.put("by-type", types);
        into.put("virtio-blk", d);
    }

    @Override
    public void close() {
        io.shutdownNow();
        try {
            io.awaitTermination(5, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        image.close();
    }
}
