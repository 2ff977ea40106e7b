package dev.ferry.migration.ram;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.PageResidency;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.StreamText;
import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.transport.DetachedSocket;
import dev.ferry.migration.transport.IoVector;
import dev.ferry.migration.transport.MigrationConnection;

import java.io.EOFException;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * The destination's multifd channels: one thread per channel reads packets and their pages straight
 * from the socket into guest memory (one scattered recvmsg per packet on the socket taken out of
 * the transport, {@link DetachedSocket}; copied from the connection's buffers where the transport
 * keeps its socket, as with TLS), so N channels fault fresh guest pages
 * in on N threads. The input is hostile: every header field, block name and offset is checked
 * before a page is written, and a packet is refused whole.
 *
 * <p>Ordering: a channel that reads a SYNC packet waits there until the migration thread reads
 * the matching MULTIFD_FLUSH record in the main stream and every channel has reached its SYNC
 * ({@link #sync}); so a page sent twice, in two rounds and over two channels, lands in the order
 * it was sent. At EOF, {@link #finish} ends the channels and refuses the stream if any of them
 * carried pages after the last synchronisation point.
 */
public final class MultifdReceive implements AutoCloseable {
    /** How long the incoming thread waits at a MULTIFD_FLUSH before it re-checks the channels. */
    private static final long WAIT_MS = 100;

    /** One accepted channel, its opening read: the stream continues with its first packet. */
    public record Incoming(int id, byte[] uuid, MigrationConnection connection, ChannelLoadStream in) {
        public void close() {
            in.close();
            connection.close();
        }
    }

    private final Channel[] channels;
    private final RamReceiver receiver;
    private final Consumer<String> onFailure;
    private final Object lock = new Object();
    private long released;
    private volatile String failure;
    private volatile boolean closing;

    private MultifdReceive(List<Incoming> in, RamReceiver receiver, Consumer<String> onFailure) {
        this.receiver = receiver;
        this.onFailure = onFailure;
        this.channels = new Channel[in.size()];
        for (Incoming i : in) {
            channels[i.id()] = new Channel(i);
        }
    }

    /**
     * Reads the rest of a channel's opening, after its magic: version, uuid, id. The id is checked
     * against the set in {@link #checkSet}.
     */
    public static Incoming readOpening(MigrationConnection c, ChannelLoadStream in) throws IOException, MigrationException {
        int version = in.getBe32();
        if (version != Multifd.VERSION) {
            throw new MigrationException("multifd channel opening with version " + version + " (expected " + Multifd.VERSION + ")");
        }
        byte[] uuid = new byte[Multifd.UUID_BYTES];
        in.getBytes(uuid, 0, uuid.length);
        int id = in.getU8();
        in.skip(7 + 4 * 8);
        return new Incoming(id, uuid, c, in);
    }

    /** The first 4 bytes of a multifd channel. */
    public static boolean isChannelMagic(int magic) {
        return magic == Multifd.MAGIC;
    }

    /** Checks a newly accepted channel against those before it: id below {@code n}, unique, same uuid. */
    public static void checkSet(List<Incoming> accepted, Incoming next, int n) throws MigrationException {
        if (next.id() >= n) {
            throw new MigrationException("multifd channel " + next.id() + " connected, but multifd-channels is " + n
                    + " here (both sides must set the same multifd-channels)");
        }
        for (Incoming a : accepted) {
            if (a.id() == next.id()) {
                throw new MigrationException("multifd channel " + next.id() + " connected twice");
            }
            if (!Arrays.equals(a.uuid(), next.uuid())) {
                throw new MigrationException("multifd channel " + next.id() + " belongs to another migration (its uuid"
                        + " differs from channel " + a.id() + "'s)");
            }
        }
    }

    /** Channels whose socket left the transport (packets read straight into place); for tests. */
    int detachedChannels() {
        return (int) java.util.Arrays.stream(channels).filter(c -> c != null && c.direct != null).count();
    }

    /** Starts a thread per channel, writing through {@code receiver}; {@code onFailure} hears the first error. */
    static MultifdReceive start(List<Incoming> in, RamReceiver receiver, Consumer<String> onFailure) {
        MultifdReceive r = new MultifdReceive(in, receiver, onFailure);
        for (Channel c : r.channels) {
            c.thread.start();
        }
        return r;
    }

    long pagesLoaded() {
        return java.util.Arrays.stream(channels).mapToLong(c -> c.pages).sum();
    }

    long bytesRead() {
        return java.util.Arrays.stream(channels).mapToLong(c -> c.bytes).sum();
    }

    /**
     * Incoming thread, at a MULTIFD_FLUSH record: waits until every channel has read one more
     * SYNC packet, then lets them all go on.
     */
    void sync() throws MigrationException {
        synchronized (lock) {
            long target = released + 1;
            for (Channel c : channels) {
                while (c.arrived < target) {
                    check();
                    if (c.ended) {
                        throw new MigrationException("multifd channel " + c.id + " ended before its SYNC packet");
                    }
                    try {
                        lock.wait(WAIT_MS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new MigrationException("interrupted while waiting for the multifd channels");
                    }
                }
            }
            released = target;
            lock.notifyAll();
        }
    }

    private void check() throws MigrationException {
        String f = failure;
        if (f != null) {
            throw new MigrationException(f);
        }
        if (closing) {
            throw new MigrationException("multifd channels closed");
        }
    }

    /**
     * Incoming thread, at EOF: every channel must be parked at the last synchronisation point
     * with nothing after it; then the channels are closed. Refuses the stream otherwise.
     */
    void finish() throws MigrationException {
        synchronized (lock) {
            check();
            for (Channel c : channels) {
                if (c.arrived > released) {
                    throw new MigrationException("multifd channel " + c.id + " sent a SYNC packet the main stream never"
                            + " flushed");
                }
            }
        }
        close();
        for (Channel c : channels) {
            if (c.pagesSinceSync > 0) {
                throw new MigrationException("multifd channel " + c.id + " carried " + c.pagesSinceSync
                        + " pages after the last synchronisation point (MULTIFD_FLUSH)");
            }
        }
        String f = failure;
        if (f != null) {
            throw new MigrationException(f);
        }
    }

    /** Any thread, idempotent: closes the connections and waits for the threads. */
    @Override
    public void close() {
        synchronized (lock) {
            closing = true;
            lock.notifyAll();
        }
        for (Channel c : channels) {
            DetachedSocket d = c.direct;
            if (d != null) {
                d.shutdown();
            }
            c.incoming.connection().close();
        }
        Multifd.joinAll(java.util.Arrays.stream(channels).map(c -> c.thread).toList());
        for (Channel c : channels) {
            if (!c.thread.isAlive()) {
                c.incoming.in().close();
                DetachedSocket d = c.direct;
                if (d != null) {
                    d.close();
                }
            }
        }
    }

    private void fail(Channel c, String why) {
        boolean first;
        synchronized (lock) {
            first = failure == null && !closing;
            if (first) {
                failure = "multifd channel " + c.id + ": " + why;
            }
            lock.notifyAll();
        }
        if (first) {
            onFailure.accept(failure);
        }
    }

    private final class Channel implements Runnable {
        final int id;
        final Incoming incoming;
        final Thread thread;
        private final byte[] name = new byte[Multifd.RAMBLOCK_BYTES];
        private final long[] offsets = new long[Multifd.PAGES_PER_PACKET];
        private long lastNum = Long.MIN_VALUE;
        private long packets;
        volatile long arrived;
        volatile boolean ended;
        volatile long pages;
        volatile long bytes;
        volatile long pagesSinceSync;
        /** The socket taken out of the transport for scattered reads; null where it cannot be (TLS). */
        volatile DetachedSocket direct;
        /** Where a packet's pages land first when guest RAM has 4 KiB pages (detached socket only). */
        private long bounce;
        /** Bytes of the channel read before the detach (its opening). */
        private final long opened;

        Channel(Incoming incoming) {
            this.id = incoming.id();
            this.incoming = incoming;
            this.opened = incoming.in().bytesRead();
            this.thread = new Thread(this, "ferry-multifd-recv-" + id);
            this.thread.setDaemon(true);
        }

        @Override
        public void run() {
            long staging = NativeMemory.allocate(Multifd.STAGING_BYTES);
            try (PageResidency residency = new PageResidency(); IoVector iov = new IoVector(Multifd.PAGES_PER_PACKET)) {
                DetachedSocket d = incoming.in().detach();
                if (d != null) {
                    bounce = NativeMemory.allocate(Multifd.BOUNCE_BYTES);
                }
                direct = d;
                if (d != null && closing) {
                    d.shutdown(); // close() ran before it could see the socket
                }
                while (true) {
                    if (!read(staging, 4, iov, true)) {
                        return; // the source closed the channel between packets
                    }
                    if (!packet(staging, residency, iov)) {
                        return;
                    }
                    bytes = bytesSoFar();
                }
            } catch (MigrationException e) {
                fail(this, e.getMessage());
            } catch (IOException | RuntimeException e) {
                if (!closing) {
                    String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
                    fail(this, (e instanceof EOFException ? "the channel ended inside a packet: " : "") + why);
                }
            } finally {
                NativeMemory.free(staging);
                if (bounce != 0) {
                    NativeMemory.free(bounce);
                }
                synchronized (lock) {
                    ended = true;
                    lock.notifyAll();
                }
            }
        }

        private long bytesSoFar() {
            DetachedSocket d = direct;
            return d == null ? incoming.in().bytesRead() : opened + d.bytesRead();
        }

        /**
         * Reads {@code length} bytes to native {@code address}: from the detached socket, else
         * through the stream. With {@code mayEnd}, false when the channel ended before the first byte.
         */
        private boolean read(long address, long length, IoVector iov, boolean mayEnd) throws IOException {
            DetachedSocket d = direct;
            if (d != null) {
                iov.clear();
                iov.add(address, length);
                if (!d.read(iov)) {
                    if (mayEnd) {
                        return false;
                    }
                    throw new EOFException("the stream ended after " + bytesSoFar() + " bytes");
                }
                return true;
            }
            ChannelLoadStream in = incoming.in();
            long start = in.bytesRead();
            try {
                in.getNative(address, length);
            } catch (EOFException e) {
                if (mayEnd && in.bytesRead() == start) {
                    return false;
                }
                throw e;
            }
            return true;
        }

        /**
         * Reads and applies one packet, its magic already at {@code staging}; false when the
         * channel should stop (closing).
         */
        private boolean packet(long staging, PageResidency residency, IoVector iov) throws IOException, MigrationException {
            long n = packets++;
            int magic = Multifd.getBe32(staging);
            if (magic != Multifd.MAGIC) {
                throw new MigrationException(String.format("packet %d: magic 0x%08x, expected 0x%08x", n, magic, Multifd.MAGIC));
            }
            read(staging + 4, Multifd.HEADER_BYTES - 4, iov, false);
            int version = Multifd.getBe32(staging + 4);
            if (version != Multifd.VERSION) {
                throw new MigrationException("packet " + n + ": version " + version + " (expected " + Multifd.VERSION + ")");
            }
            int flags = Multifd.getBe32(staging + 8);
            if ((flags & ~Multifd.FLAG_SYNC) != 0) {
                throw new MigrationException(String.format("packet %d: unknown flags 0x%x", n, flags));
            }
            long alloc = Multifd.getBe32(staging + 12) & 0xffffffffL;
            long normal = Multifd.getBe32(staging + 16) & 0xffffffffL;
            long nextSize = Multifd.getBe32(staging + 20) & 0xffffffffL;
            long num = Multifd.getBe64(staging + 24);
            long zero = Multifd.getBe32(staging + 32) & 0xffffffffL;
            if (alloc > Multifd.PAGES_PER_PACKET) {
                throw new MigrationException("packet " + n + ": pages_alloc " + alloc + " over the limit of "
                        + Multifd.PAGES_PER_PACKET);
            }
            if (normal + zero > alloc) {
                throw new MigrationException("packet " + n + ": " + normal + " normal and " + zero
                        + " zero pages in a packet of " + alloc);
            }
            if (nextSize != normal * RamFlags.PAGE_SIZE) {
                throw new MigrationException("packet " + n + ": next_packet_size " + nextSize + " for " + normal
                        + " normal pages");
            }
            if (num <= lastNum) {
                throw new MigrationException("packet " + n + ": packet_num " + num + " after " + lastNum
                        + " (packet numbers only grow)");
            }
            lastNum = num;
            long nameAt = staging + Multifd.HEADER_BYTES - Multifd.RAMBLOCK_BYTES;
            NativeMemory.copyToArray(nameAt, name, 0, name.length);
            int len = 0;
            while (len < name.length && name[len] != 0) {
                len++;
            }
            if (len == name.length) {
                throw new MigrationException("packet " + n + ": RAM block name not terminated");
            }
            int count = (int) (normal + zero);
            GuestRegion r = null;
            if (count > 0) {
                r = receiver.regionNamed(name, len);
                if (r == null) {
                    throw new MigrationException("packet " + n + ": RAM block '" + StreamText.escape(name, len)
                            + "', which this VM lacks");
                }
                read(staging + Multifd.HEADER_BYTES, 8L * count, iov, false);
            }
            for (int i = 0; i < count; i++) {
                long off = Multifd.getBe64(staging + Multifd.HEADER_BYTES + 8L * i);
                if ((off & RamFlags.PAGE_MASK) != 0 || off < 0 || off > r.size() - RamFlags.PAGE_SIZE) {
                    throw new MigrationException("packet " + n + ": page offset 0x" + Long.toHexString(off)
                            + (off >= 0 && off < r.size() ? " not page-aligned" : " outside block '" + r.name() + "' of "
                            + r.size() + " bytes"));
                }
                offsets[i] = off;
            }
            if (normal > 0) {
                readPages(r, (int) normal, iov);
            }
            for (int i = (int) normal; i < count; i++) {
                receiver.loadZero(r, offsets[i] >>> DirtyBitmap.PAGE_SHIFT, 0, residency);
            }
            pages += count;
            pagesSinceSync += count;
            if ((flags & Multifd.FLAG_SYNC) == 0) {
                return true;
            }
            synchronized (lock) {
                arrived++;
                pagesSinceSync = 0;
                lock.notifyAll();
                while (released < arrived && !closing && failure == null) {
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return false;
                    }
                }
                return !closing && failure == null;
            }
        }

        /**
         * The first {@code nn} pages at {@link #offsets}, every offset checked: one scattered
         * recvmsg straight into guest memory on a detached socket, else copied from the stream.
         */
        private void readPages(GuestRegion r, int nn, IoVector iov) throws IOException {
            DetachedSocket d = direct;
            if (d != null) {
                iov.clear();
                if (r.hugetlb()) {
                    for (int i = 0; i < nn; i++) {
                        iov.add(r.hostAddress(offsets[i]), RamFlags.PAGE_SIZE);
                    }
                } else {
                    iov.add(bounce, (long) nn * RamFlags.PAGE_SIZE); // see Multifd.BOUNCE_BYTES
                }
                if (!d.read(iov)) {
                    throw new EOFException("the stream ended after " + bytesSoFar() + " bytes");
                }
                if (!r.hugetlb()) {
                    for (int i = 0; i < nn; i++) {
                        NativeMemory.copy(bounce + (long) i * RamFlags.PAGE_SIZE, r.hostAddress(offsets[i]), RamFlags.PAGE_SIZE);
                    }
                }
            } else {
                for (int i = 0; i < nn; i++) {
                    incoming.in().getNative(r.hostAddress(offsets[i]), RamFlags.PAGE_SIZE);
                }
            }
            for (int i = 0; i < nn; i++) {
                receiver.markLoaded(r, offsets[i] >>> DirtyBitmap.PAGE_SHIFT);
            }
        }
    }
}
