package dev.ferry.migration.ram;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.PageResidency;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.stream.BandwidthLimiter;
import dev.ferry.migration.stream.ChannelSaveStream;
import dev.ferry.migration.transport.DetachedSocket;
import dev.ferry.migration.transport.IoVector;
import dev.ferry.migration.transport.MigrationConnection;
import dev.ferry.migration.transport.MigrationTransports;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.security.SecureRandom;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The source's multifd channels (QEMU's {@code multifd} capability): N extra connections to the
 * destination, each with a thread of its own. The migration thread walks the dirty bitmap as
 * before but only collects page numbers into packets of up to {@value Multifd#PAGES_PER_PACKET}
 * pages of one RAM block; a channel thread tells zero pages from normal ones (the zero-page scan
 * runs on the channels, in parallel) and writes the packet: header, offsets and the normal pages'
 * contents in one gathered sendmsg straight from guest memory on the socket it took out of the
 * transport ({@link DetachedSocket}), or copied into the connection's chunks where the transport
 * keeps its socket (TLS). {@link #sync} is the ordering point: every packet queued
 * before it is written, and a SYNC packet follows on every channel, before the migration thread
 * writes the MULTIFD_FLUSH record into the main stream.
 *
 * <p>No allocation per page or per packet: packets are a pool of {@code 3N + 1} page lists,
 * recycled; each channel holds at most two queued packets (a semaphore of {@code 2N} permits makes
 * the migration thread wait for a free slot). Threads: {@link #queue}, {@link #sync} and the
 * counters' accounting run on the migration thread; {@link #close} on any thread.
 */
public final class MultifdSend implements AutoCloseable {
    private static final long POLL_MS = 10;
    private static final byte[] ZEROS = new byte[Multifd.RAMBLOCK_BYTES];
    private final Channel[] channels;
    private final BandwidthLimiter limiter;
    private final ArrayBlockingQueue<Packet> free;
    private final Semaphore slots;
    private final Object syncLock = new Object();
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile IOException failure;
    private java.util.function.Supplier<String> mainLost = () -> null;
    /** Bumped at every dirty sync; a channel re-reads page residency for packets of a newer epoch. */
    private volatile long epoch;
    private Packet filling;
    private long packetNum;
    /** Bytes counted against max-bandwidth so far: packets as queued, corrected at each sync. */
    private long accounted;
    private int next;
    private boolean dirty;
    private long syncs;

    private MultifdSend(int n, BandwidthLimiter limiter) {
        this.channels = new Channel[n];
        this.limiter = limiter;
        this.free = new ArrayBlockingQueue<>(3 * n + 1);
        for (int i = 0; i < 3 * n + 1; i++) {
            free.add(new Packet(false));
        }
        this.slots = new Semaphore(2 * n);
    }

    /**
     * Opens {@code n} channels to {@code uri} (after the main channel), writes each one's opening
     * and starts its thread. Closes what it opened if any connection fails.
     */
    public static MultifdSend open(MigrationTransports transports, String uri, int n, BandwidthLimiter limiter)
            throws IOException {
        return open(transports, uri, n, limiter, () -> null);
    }

    /**
     * As above; {@code mainLost} says why the main channel is gone (null while it is not): the
     * migration thread, waiting for room in a channel or for a sync, checks it every
     * {@value #POLL_MS} ms and then closes the channels and fails.
     */
    public static MultifdSend open(MigrationTransports transports, String uri, int n, BandwidthLimiter limiter,
                                   java.util.function.Supplier<String> mainLost) throws IOException {
        if (n < 1 || n > Multifd.MAX_CHANNELS) {
            throw new IllegalArgumentException("multifd-channels must be in 1.." + Multifd.MAX_CHANNELS + ", was " + n);
        }
        byte[] uuid = new byte[Multifd.UUID_BYTES];
        new SecureRandom().nextBytes(uuid);
        MultifdSend s = new MultifdSend(n, limiter);
        s.mainLost = mainLost;
        try {
            for (int i = 0; i < n; i++) {
                MigrationConnection c;
                try {
                    c = transports.connect(uri);
                } catch (IOException e) {
                    throw new IOException("multifd channel " + i + ": " + e.getMessage(), e);
                }
                Channel ch = s.new Channel(i, c);
                s.channels[i] = ch;
                ch.out.putBe32(Multifd.MAGIC);
                ch.out.putBe32(Multifd.VERSION);
                ch.out.putBytes(uuid);
                ch.out.putU8(i);
                ch.out.putBytes(ZEROS, 0, 7 + 4 * 8);
                ch.out.flush();
                ch.bytes = ch.out.bytesWritten();
                ch.direct = c.detach(); // pages then go from guest memory to the socket, uncopied
            }
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
        for (Channel ch : s.channels) {
            ch.thread.start();
        }
        return s;
    }

    public int channels() {
        return channels.length;
    }

    /** Channels whose socket left the transport (packets without copies through it); for tests. */
    int detachedChannels() {
        return (int) java.util.Arrays.stream(channels).filter(c -> c != null && c.direct != null).count();
    }

    /** Bytes the channels handed to their connections (openings, headers, offsets, pages). */
    public long bytesSent() {
        return sum(c -> c.bytes);
    }

    long normalPages() {
        return sum(c -> c.normalPages);
    }

    long zeroPages() {
        return sum(c -> c.zeroPages);
    }

    /** Over the channels opened so far (a failed open leaves the rest null). */
    private long sum(java.util.function.ToLongFunction<Channel> f) {
        long n = 0;
        for (Channel c : channels) {
            if (c != null) {
                n += f.applyAsLong(c);
            }
        }
        return n;
    }

    /** Migration thread: the dirty bitmap was synced; pages queued from now on are read afresh. */
    void newEpoch() {
        epoch++;
    }

    /** Whether pages were queued since the last {@link #sync}. */
    boolean dirty() {
        return dirty;
    }

    /** Migration thread: adds a page to the packet being filled; hands the packet off when full. */
    void queue(GuestRegion region, byte[] idstr, long page) throws IOException {
        Packet p = filling;
        if (p != null && (p.region != region || p.count == Multifd.PAGES_PER_PACKET)) {
            handOff();
            p = null;
        }
        if (p == null) {
            p = takeFree();
            p.region = region;
            p.idstr = idstr;
            p.count = 0;
            p.epoch = epoch;
            filling = p;
        }
        p.pages[p.count++] = page;
        dirty = true;
    }

    private Packet takeFree() throws IOException {
        try {
            Packet p;
            while ((p = free.poll(POLL_MS, TimeUnit.MILLISECONDS)) == null) {
                checkFailure();
            }
            return p;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a multifd packet");
        }
    }

    private void handOff() throws IOException {
        Packet p = filling;
        if (p == null) {
            return;
        }
        filling = null;
        p.num = packetNum++;
        try {
            while (!slots.tryAcquire(POLL_MS, TimeUnit.MILLISECONDS)) {
                checkFailure();
            }
        } catch (InterruptedException e) {
            free.offer(p);
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a multifd channel");
        }
        checkFailure();
        // A permit means fewer than 2N packets are queued, so some channel's queue has room.
        // max-bandwidth counts a packet when it is queued, every page as a whole one (which
        // page is zero the channel finds later); the sync corrects to what was sent.
        long estimate = Multifd.HEADER_BYTES + (long) p.count * (8 + RamFlags.PAGE_SIZE);
        for (int i = 0; i < channels.length; i++) {
            Channel c = channels[(next + i) % channels.length];
            if (c.queue.offer(p)) {
                next = (next + i + 1) % channels.length;
                limiter.account(estimate);
                accounted += estimate;
                return;
            }
        }
        slots.release();
        free.offer(p);
        throw new IllegalStateException("no multifd channel had room although a slot was free");
    }

    /** After a sync, when every packet is written: the estimates give way to what was sent. */
    private void accountToLimiter() {
        long b = bytesSent();
        limiter.account(b - accounted);
        accounted = b;
    }

    /**
     * Migration thread: hands off the partly filled packet, queues a SYNC packet on every channel
     * and waits until every channel has written everything queued before it, SYNC included.
     */
    void sync() throws IOException {
        handOff();
        syncs++;
        try {
            for (Channel c : channels) {
                c.syncPacket.num = packetNum++;
                while (!c.queue.offer(c.syncPacket, POLL_MS, TimeUnit.MILLISECONDS)) {
                    checkFailure();
                }
            }
            synchronized (syncLock) {
                for (Channel c : channels) {
                    while (c.syncsSent < syncs) {
                        checkFailure();
                        syncLock.wait(POLL_MS);
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while synchronising the multifd channels");
        }
        checkFailure();
        accountToLimiter();
        dirty = false;
    }

    private void checkFailure() throws IOException {
        IOException f = failure;
        if (f != null) {
            throw new IOException(f.getMessage(), f);
        }
        String lost = mainLost.get();
        if (lost != null) {
            // Wakes channel threads blocked on a stalled connection. No join here: this may run
            // under syncLock (in sync), which a channel thread needs to end; close() joins later.
            shutdownChannels();
            throw new IOException("multifd: " + lost);
        }
        if (closed.get()) {
            throw new IOException("multifd channels closed");
        }
    }

    private void fail(Channel c, Throwable e) {
        synchronized (syncLock) {
            if (failure == null && !closed.get()) {
                String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
                String where = why.startsWith(c.conn.description()) ? "" : " (" + c.conn.description() + ")";
                if (c.bytes <= Multifd.INIT_BYTES) {
                    why += " (before any packet: is multifd on at the destination, with the same multifd-channels?)";
                }
                failure = new IOException("multifd channel " + c.id + where + ": " + why, e);
            }
            syncLock.notifyAll();
        }
    }

    /** Any thread, idempotent: closes every channel's connection and ends its thread. */
    @Override
    public void close() {
        shutdownChannels();
        Multifd.joinAll(java.util.Arrays.stream(channels).filter(java.util.Objects::nonNull).map(c -> c.thread).toList());
        for (Channel c : channels) {
            if (c != null && !c.thread.isAlive()) {
                c.out.close();
                if (c.direct != null) {
                    c.direct.close();
                }
            }
        }
    }

    /** Any thread, idempotent: shuts every channel's connection down and wakes its thread; no wait. */
    private void shutdownChannels() {
        if (closed.compareAndSet(false, true)) {
            for (Channel c : channels) {
                if (c != null) {
                    c.thread.interrupt();
                    if (c.direct != null) {
                        c.direct.shutdown();
                    }
                    c.conn.close();
                }
            }
            synchronized (syncLock) {
                syncLock.notifyAll();
            }
        }
    }

    /** Up to {@value Multifd#PAGES_PER_PACKET} pages of one RAM block, or a channel's SYNC marker. */
    private static final class Packet {
        final boolean sync;
        final long[] pages = new long[Multifd.PAGES_PER_PACKET];
        GuestRegion region;
        byte[] idstr;
        int count;
        long num;
        long epoch;

        Packet(boolean sync) {
            this.sync = sync;
        }
    }

    private final class Channel implements Runnable {
        final int id;
        final MigrationConnection conn;
        final ChannelSaveStream out;
        final ArrayBlockingQueue<Packet> queue = new ArrayBlockingQueue<>(2);
        final Packet syncPacket = new Packet(true);
        final Thread thread;
        private final long[] normal = new long[Multifd.PAGES_PER_PACKET];
        private final long[] zero = new long[Multifd.PAGES_PER_PACKET];
        private long residencyEpoch = -1;
        volatile long bytes;
        volatile long normalPages;
        volatile long zeroPages;
        volatile long syncsSent;
        /** The socket taken out of the transport for gathered writes; null where it cannot be (TLS). */
        volatile DetachedSocket direct;
        /** Where a packet's pages are copied first when guest RAM has 4 KiB pages (detached socket only). */
        private long bounce;

        Channel(int id, MigrationConnection conn) {
            this.id = id;
            this.conn = conn;
            this.out = new ChannelSaveStream(conn, new BandwidthLimiter(0, System::nanoTime));
            this.thread = new Thread(this, "ferry-multifd-send-" + id);
            this.thread.setDaemon(true);
        }

        @Override
        public void run() {
            long staging = NativeMemory.allocate(Multifd.STAGING_BYTES);
            bounce = direct == null ? 0 : NativeMemory.allocate(Multifd.BOUNCE_BYTES);
            try (PageResidency residency = new PageResidency(); IoVector iov = new IoVector(2 + Multifd.PAGES_PER_PACKET)) {
                NativeMemory.fill(staging, Multifd.STAGING_BYTES, (byte) 0);
                while (true) {
                    Packet p = queue.take();
                    if (p.sync) {
                        header(staging, Multifd.FLAG_SYNC, 0, 0, p.num, null);
                        send(staging, Multifd.HEADER_BYTES, null, 0, iov);
                        if (direct == null) {
                            out.flush();
                        }
                        synchronized (syncLock) {
                            syncsSent++;
                            syncLock.notifyAll();
                        }
                        continue;
                    }
                    slots.release();
                    try {
                        write(p, residency, staging, iov);
                    } finally {
                        free.offer(p);
                    }
                    if (direct == null && queue.isEmpty()) {
                        out.flush();
                    }
                }
            } catch (InterruptedException e) {
                // closed
            } catch (IOException | RuntimeException e) {
                fail(this, e);
            } finally {
                NativeMemory.free(staging);
                if (bounce != 0) {
                    NativeMemory.free(bounce);
                }
                // This thread's cache of Netty's pool holds chunks it wrote: free them as the thread ends.
                io.netty.util.concurrent.FastThreadLocal.removeAll();
            }
        }

        private void write(Packet p, PageResidency residency, long staging, IoVector iov) throws IOException {
            if (p.epoch != residencyEpoch) {
                residency.invalidate(); // the window may predate the sync that made these pages dirty
                residencyEpoch = p.epoch;
            }
            GuestRegion region = p.region;
            int nn = 0;
            int nz = 0;
            for (int i = 0; i < p.count; i++) {
                long page = p.pages[i];
                long host = region.hostAddress(page << DirtyBitmap.PAGE_SHIFT);
                // As the single stream decides: a page the memfd never backed, or one given back
                // to the host, is zero without reading it (reading would allocate it).
                if (region.isDiscarded(page) || !residency.mayHoldData(region, page)
                        || NativeMemory.isZero(host, RamFlags.PAGE_SIZE)) {
                    zero[nz++] = page;
                } else {
                    normal[nn++] = page;
                }
            }
            header(staging, 0, nn, nz, p.num, p.idstr);
            long at = staging + Multifd.HEADER_BYTES;
            for (int i = 0; i < nn; i++, at += 8) {
                Multifd.putBe64(at, normal[i] << DirtyBitmap.PAGE_SHIFT);
            }
            for (int i = 0; i < nz; i++, at += 8) {
                Multifd.putBe64(at, zero[i] << DirtyBitmap.PAGE_SHIFT);
            }
            send(staging, at - staging, region, nn, iov);
            normalPages += nn;
            zeroPages += nz;
        }

        /**
         * The staged header and offsets, then the first {@code nn} normal pages' contents: one
         * gathered sendmsg straight from guest memory on a detached socket, else copied into the
         * connection's chunks.
         */
        private void send(long staging, long length, GuestRegion region, int nn, IoVector iov) throws IOException {
            if (direct != null) {
                iov.clear();
                iov.add(staging, length);
                if (region == null || region.hugetlb()) {
                    for (int i = 0; i < nn; i++) {
                        iov.add(region.hostAddress(normal[i] << DirtyBitmap.PAGE_SHIFT), RamFlags.PAGE_SIZE);
                    }
                } else {
                    for (int i = 0; i < nn; i++) { // see Multifd.BOUNCE_BYTES
                        NativeMemory.copy(region.hostAddress(normal[i] << DirtyBitmap.PAGE_SHIFT),
                                bounce + (long) i * RamFlags.PAGE_SIZE, RamFlags.PAGE_SIZE);
                    }
                    iov.add(bounce, (long) nn * RamFlags.PAGE_SIZE);
                }
                direct.write(iov);
                bytes = Multifd.INIT_BYTES + direct.bytesWritten();
                return;
            }
            out.putNative(staging, length);
            for (int i = 0; i < nn; i++) {
                out.putNative(region.hostAddress(normal[i] << DirtyBitmap.PAGE_SHIFT), RamFlags.PAGE_SIZE);
            }
            bytes = out.bytesWritten();
        }

        /** Writes a packet header into {@code staging} (whose name field is zero past the name). */
        private void header(long staging, int flags, int nn, int nz, long num, byte[] idstr) {
            Multifd.putBe32(staging, Multifd.MAGIC);
            Multifd.putBe32(staging + 4, Multifd.VERSION);
            Multifd.putBe32(staging + 8, flags);
            Multifd.putBe32(staging + 12, Multifd.PAGES_PER_PACKET);
            Multifd.putBe32(staging + 16, nn);
            Multifd.putBe32(staging + 20, nn * RamFlags.PAGE_SIZE);
            Multifd.putBe64(staging + 24, num);
            Multifd.putBe32(staging + 32, nz);
            long name = staging + Multifd.HEADER_BYTES - Multifd.RAMBLOCK_BYTES;
            NativeMemory.fill(name, Multifd.RAMBLOCK_BYTES, (byte) 0);
            if (idstr != null) {
                NativeMemory.copyFromArray(idstr, 0, name, idstr.length);
            }
        }
    }
}
