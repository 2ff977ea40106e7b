package dev.ferry.virtio.balloon;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationRegistry;
import dev.ferry.core.migration.PrecopyNotifier;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;

/**
 * virtio-balloon (device ID 5): the host asks for guest memory back, the guest gives pages, the
 * host drops them. Queues, in the order Linux numbers them (an optional queue exists only with its
 * feature, and the ones after it move down when the driver does not take it):
 * inflate 0, deflate 1, stats (STATS_VQ), free page (FREE_PAGE_HINT).
 *
 * <h2>Host memory</h2>
 * An inflated PFN (le32, 4 KiB units) is given back through {@link GuestMemory#discard}: the page
 * is punched out of the RAM memfd, so the host's allocation drops, and marked discarded, so RAM
 * migration sends it as a zero page without reading it (reading would allocate it again). Runs of
 * consecutive PFNs go in one call. A deflated PFN is {@link GuestMemory#reclaim}ed; it reads as
 * zero until the guest writes it. PFNs outside RAM are skipped and counted, never punched.
 *
 * <h2>Free page hinting</h2>
 * {@link FreePageHinting} follows RAM migration's dirty syncs (a {@link PrecopyNotifier}); hint
 * buffers of a started round leave the migration's pending set through
 * {@link MigrationRegistry#guestFreePageHint}, on the event loop, never on a vCPU.
 *
 * <h2>Stats</h2>
 * The device holds the driver's stats buffer; returning it (every {@code statsPollingSeconds})
 * asks for fresh stats, which come back in the same buffer.
 *
 * <h2>Migration</h2>
 * The device part of the {@code virtio} field is {@code BalloonState}: num_pages, actual, the free
 * page hint's command id and status, and the inflated set as runs of pages. The destination
 * checks it completely and punches the inflated set out of its own memfd. The held stats buffer
 * is not carried: the destination un-pops it ({@code rewind}) and pops it again.
 *
 * <p>The queues' roles are package-private collaborators: {@code BalloonPages} (inflate,
 * deflate and the inflated set in the stream), {@code BalloonStatsQueue} and
 * {@code FreePageHintQueue}; this class is the device model that routes to them.
 *
 * <h2>Threads</h2>
 * Queues and the stats timer on the event loop; {@link #config}/{@link #writeConfig} on vCPU
 * threads; {@link #setTarget} and the getters on any thread (QMP); precopy events on the
 * migration thread.
 */
public final class VirtioBalloon implements VirtioDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBalloon.class);
    public static final int F_MUST_TELL_HOST = 0;
    public static final int F_STATS_VQ = 1;
    public static final int F_DEFLATE_ON_OOM = 2;
    public static final int F_FREE_PAGE_HINT = 3;
    public static final int F_PAGE_POISON = 4;
    public static final int F_REPORTING = 5;
    /** A stream may carry at most this many runs of inflated pages (16 bytes each). */
    static final int MAX_RUNS = 1 << 20;
    private static final int Q_INFLATE = 0;
    private static final int Q_DEFLATE = 1;

    private final String id;
    private final BalloonOptions options;
    private final GuestMemory memory;
    private final MigrationRegistry registry;
    private final long ramPages;
    private final long ramBytes;


    private final FreePageHinting hinting = new FreePageHinting();
    private final BalloonCounters counters = new BalloonCounters();
    private final PrecopyNotifier precopy = this::onPrecopy;
    private final BalloonPages pages;
    private final BalloonStatsQueue statsVq;
    private final FreePageHintQueue hintVq;

    private volatile int numPages;
    private volatile int actual;
    private volatile LongConsumer actualListener = a -> { };

    // Loop-thread state (ctx and running also read by the migration thread under this object's lock).
    VirtioContext ctx;
    boolean running;
    private boolean configPending;
    private boolean resumePending;
    int statsQueue = -1;
    private int hintQueue = -1;
    private DeviceEventLoop.Timer resumeTimer;

    /** A load in progress (migration thread), until commitLoad. */
    private BalloonState loaded;

    /**
     * @param memory       the machine's RAM, whose memfd inflated pages are punched from
     * @param registry     the machine's migration registry: the precopy notifier is registered there
     *                     (with {@code freePageHint}) and hints go through it
     * @param clockSeconds host time for the stats' {@code last-update}
     */
    public VirtioBalloon(String id, BalloonOptions options, GuestMemory memory, MigrationRegistry registry,
                         LongSupplier clockSeconds) {
        this.id = id;
        this.options = options;
        this.memory = memory;
        this.registry = registry;
        this.ramBytes = memory.ramBytes();
        this.ramPages = ramBytes >>> BalloonConfig.PFN_SHIFT;
        this.pages = new BalloonPages(id, memory, counters, ramPages);
        this.statsVq = new BalloonStatsQueue(this, counters, clockSeconds, options.statsPollingSeconds());
        this.hintVq = new FreePageHintQueue(id, hinting, counters, registry);
        if (options.freePageHint()) {
            registry.addPrecopyNotifier(precopy);
        }
    }

    // ---- the VMM's side ----

    /**
     * QMP {@code balloon value=<bytes>}: the guest should be left with {@code guestBytes} of RAM, so
     * {@code num_pages = (RAM − guestBytes) / 4 KiB} (QEMU's rule; a target above RAM is RAM).
     *
     * @throws IllegalArgumentException for a target of 0 or less
     */
    public void setTarget(long guestBytes) {
        if (guestBytes <= 0) {
            throw new IllegalArgumentException(id + ": balloon target must be positive, got " + guestBytes);
        }
        long target = Math.min(guestBytes, ramBytes);
        numPages = (int) ((ramBytes - target) >>> BalloonConfig.PFN_SHIFT);
        signalConfig();
    }

    /** Pages the host asks for. */
    public int numPages() {
        return numPages;
    }

    /** Pages the driver says it holds (its {@code actual}). */
    public int actualPages() {
        return actual;
    }

    /** QMP {@code query-balloon}'s {@code actual}: the guest's memory in bytes, RAM − actual pages. */
    public long actualBytes() {
        return ramBytes - ((long) actual << BalloonConfig.PFN_SHIFT);
    }

    /** Outbound port for {@code BALLOON_CHANGE}: told the new {@link #actualBytes()} when the driver changes actual. */
    public void setActualListener(LongConsumer listener) {
        this.actualListener = listener == null ? a -> { } : listener;
    }

    /** The guest's last stats and when they came (QEMU's {@code guest-stats}). */
    public BalloonStats guestStats() {
        return statsVq.stats();
    }

    /** QEMU's {@code guest-stats-polling-interval}: 0 stops polling. Any thread. */
    public void setStatsPollingInterval(int seconds) {
        if (seconds < 0) {
            throw new IllegalArgumentException("polling interval " + seconds + " is negative");
        }
        statsVq.setPollingSeconds(seconds);
        VirtioContext c = ctx;
        if (c != null) {
            c.loop().execute(statsVq::arm);
        }
    }

    public int statsPollingInterval() {
        return statsVq.pollingSeconds();
    }

    public BalloonCounters counters() {
        return counters;
    }

    /** The free page hinting state, for tests and {@code x-ferry-devices}. */
    public FreePageHinting hinting() {
        return hinting;
    }

    /** Pages in the balloon now, as the host sees them (discarded in guest RAM). */
    public long inflatedPagesNow() {
        return memory.discardedPages();
    }

    // ---- the model ----

    @Override
    public String name() {
        return "virtio-balloon";
    }

    @Override
    public int deviceId() {
        return Virtio.ID_BALLOON;
    }

    @Override
    public int stateVersion() {
        return 1;
    }

    @Override
    public long features() {
        long f = 0;
        if (options.stats()) {
            f |= Virtio.bit(F_STATS_VQ);
        }
        if (options.deflateOnOom()) {
            f |= Virtio.bit(F_DEFLATE_ON_OOM);
        }
        if (options.freePageHint()) {
            f |= Virtio.bit(F_FREE_PAGE_HINT);
        }
        return f;
    }

    @Override
    public int queueCount() {
        return 2 + (options.stats() ? 1 : 0) + (options.freePageHint() ? 1 : 0);
    }

    @Override
    public int queueMaxSize() {
        return options.queueSize();
    }

    @Override
    public byte[] config() {
        return BalloonConfig.encode(numPages, actual, options.freePageHint(), hinting.publishedCmdId());
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // Only actual is the driver's (QEMU takes it from any write that covers the config).
        if (offset == BalloonConfig.ACTUAL && size == 4) {
            int a = (int) value;
            if (Integer.toUnsignedLong(a) > ramPages) {
                LOG.warn("{}: driver wrote actual {} pages, more than the {} pages of RAM; ignored", id,
                        Integer.toUnsignedLong(a), ramPages);
                return;
            }
            int old = actual;
            actual = a;
            if (old != a) {
                actualListener.accept(actualBytes());
            }
        }
    }

    @Override
    public void restoreConfig(byte[] config) throws MigrationException {
        if (config.length < 8) {
            throw new MigrationException(id + ": virtio-balloon config of " + config.length + " bytes, expected at least 8");
        }
        // num_pages and actual travel in the device part too, where they are checked and applied.
    }

    @Override
    public void start(VirtioContext context) {
        long f = context.features();
        boolean stats = Virtio.has(f, F_STATS_VQ);
        boolean hint = Virtio.has(f, F_FREE_PAGE_HINT);
        synchronized (this) {
            ctx = context;
            statsQueue = stats ? 2 : -1;
            hintQueue = hint ? (stats ? 3 : 2) : -1;
            running = true;
            resumePending = true;
        }
        // Timers fire only once the loop runs handlers again: the VM surely runs then.
        if (resumeTimer == null) {
            resumeTimer = context.loop().timer(() -> {
                VirtioContext c = ctx;
                if (c != null && running && resumePending) {
                    resume(c);
                }
            });
        }
        resumeTimer.arm(1);
        statsVq.arm();
    }

    /**
     * The first queue notification or timer after {@link #start}, when the loop runs handlers
     * again and so the VM runs: a start can still be rolled back before it, so what touches guest memory
     * or interrupts waits for it — the config interrupt held back while stopped, and on a
     * destination the stats buffer the source held, un-popped to be popped again (QEMU's
     * {@code virtqueue_rewind}).
     */
    private void resume(VirtioContext c) {
        synchronized (this) {
            resumePending = false;
            if (configPending) {
                configPending = false;
                c.configChanged();
            }
        }
        statsVq.rewindIfLoaded(c);
    }

    @Override
    public void queueNotified(int queue) {
        VirtioContext c = ctx;
        if (c == null || !running) {
            return;
        }
        if (resumePending) {
            resume(c);
        }
        SplitVirtqueue vq = c.queue(queue);
        if (vq == null) {
            return;
        }
        try {
            if (queue == Q_INFLATE || queue == Q_DEFLATE) {
                pages.serve(c, vq, queue == Q_INFLATE);
            } else if (queue == statsQueue) {
                statsVq.serve(c, vq);
            } else if (queue == hintQueue) {
                hintVq.serve(c, vq);
            }
        } catch (VirtqueueError e) {
            c.deviceError("queue " + queue + ": " + e.getMessage());
        }
    }

    /** Migration thread: a RAM migration step moves the hinting state; the driver hears of a change. */
    private void onPrecopy(PrecopyNotifier.Step step, boolean vmStopped) {
        if (hinting.onPrecopy(step, vmStopped)) {
            signalConfig();
        }
    }

    /** The config space changed: interrupt now if the device runs, else when it starts again. */
    private synchronized void signalConfig() {
        if (running && !resumePending && ctx != null) {
            ctx.configChanged();
        } else {
            configPending = true;
        }
    }

    @Override
    public void quiesce() {
        synchronized (this) {
            running = false;
        }
        statsVq.quiesce();
        if (resumeTimer != null) {
            resumeTimer.cancel();
        }
    }

    @Override
    public void reset() {
        synchronized (this) {
            running = false;
            ctx = null;
            configPending = false;
            resumePending = false;
        }
        statsVq.reset();
        hinting.reset();
        statsVq.closeTimer();
        if (resumeTimer != null) {
            resumeTimer.close();
            resumeTimer = null;
        }
    }

    // ---- migration ----

    @Override
    public void save(SaveStream out) throws IOException {
        new BalloonState(numPages, actual, hinting.cmdId(), hinting.state().wire, pages.inflatedRuns()).save(out);
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        if (version != 1) {
            throw new MigrationException(id + ": virtio-balloon state version " + version + ", this VMM reads 1");
        }
        loaded = BalloonState.load(in, id, ramPages, pages);
        LOG.debug("{}: loaded {} runs, {} inflated pages", id, loaded.runs().length / 2, loaded.inflatedPages());
    }

    @Override
    public void commitLoad() {
        BalloonState l = loaded;
        if (l == null) {
            return;
        }
        numPages = l.numPages();
        actual = l.actual();
        hinting.restore(l.cmdId());
        pages.discardRuns(l.runs());
        statsVq.loaded();
        loaded = null;
    }

    @Override
    public void describe(Map<String, Object> into) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("num-pages", Integer.toUnsignedLong(numPages));
        d.put("actual-pages", Integer.toUnsignedLong(actual));
        d.put("actual", actualBytes());
        d.put("inflated-now", inflatedPagesNow());
        d.put("free-page-hint", hinting.state().name().toLowerCase());
        d.put("free-page-hint-cmd-id", Integer.toUnsignedLong(hinting.publishedCmdId()));
        d.put("stats-polling-interval", statsVq.pollingSeconds());
        d.putAll(counters.toMap());
        into.put("virtio-balloon", d);
    }

    @Override
    public void close() {
        registry.removePrecopyNotifier(precopy);
        DeviceEventLoop.Timer r = resumeTimer;
        statsVq.close();
        if (r != null) {
            r.close();
        }
    }
}
