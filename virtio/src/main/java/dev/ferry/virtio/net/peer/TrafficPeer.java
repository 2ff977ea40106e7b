package dev.ferry.virtio.net.peer;

import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.net.Rarp;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The other end of a guest's virtio-net link: a small learning switch with a traffic checker,
 * on a UDP socket (each VMM's {@code dgram} back-end sends its frames here from its own port) or
 * on a stream listener (TCP or UNIX, QEMU's {@code be32 length | frame} framing).
 *
 * <ul>
 *   <li><b>Switch</b>: it learns MAC → port from every frame it receives, RARPs and ARPs included,
 *       and forwards frames for a learned MAC there (two guests talk through it), broadcasts to
 *       every other port. After a migration the destination's announce moves the guest's MAC to
 *       the destination's port — until then the peer's frames go to the source, where they are lost:
 *       the announce is what ends the outage.
 *   <li><b>Checker</b>: DATA frames to its own MAC ({@link NetTraffic#PEER_MAC}) are checked per
 *       guest MAC and flow byte — sequence numbers must rise by one: a jump is a gap (lost frames, kept with the
 *       time and the port it was seen on), a repeat or step back a duplicate or reordering — and
 *       answered with a REPLY carrying the peer's own sequence number for that guest, whose send
 *       time it remembers. RARP and ARP frames are kept as announcements with their time.
 * </ul>
 *
 * <p>Usable in-process by tests (one receiving thread per socket) and as its own process:
 * {@code java -cp ... dev.ferry.virtio.net.peer.TrafficPeer udp:127.0.0.1:5555 [seconds]}
 * ({@code tcp:HOST:PORT}, {@code unix:PATH}) prints what it saw every second.
 */
public final class TrafficPeer implements AutoCloseable {
    private static final int MAX_FRAME = 65536 + 14;
    private final DatagramChannel udp;
    private final ServerSocketChannel stream;
    private final SocketAddress address;
    private final List<Thread> threads = new CopyOnWriteArrayList<>();
    private final List<SocketChannel> connections = new CopyOnWriteArrayList<>();
    private volatile boolean closed;

    // Guarded by this.
    private final Map<Long, Port> table = new HashMap<>();
    private final Map<Long, Flow> flows = new LinkedHashMap<>();
    private final List<Announce> announces = new ArrayList<>();
    private final List<Move> moves = new ArrayList<>();
    private long forwarded;
    private long dropped;
    private long received;

    /** Where frames go back to: a UDP address or a stream connection. */
    private interface Port {
        void send(ByteBuffer frame) throws IOException;

        String name();
    }

    private record UdpPort(DatagramChannel ch, SocketAddress to) implements Port {
        @Override
        public void send(ByteBuffer frame) throws IOException {
            ch.send(frame, to);
        }

        @Override
        public String name() {
            return "udp " + to;
        }
    }

    private record StreamPort(SocketChannel ch, String name) implements Port {
        @Override
        public void send(ByteBuffer frame) throws IOException {
            ByteBuffer len = ByteBuffer.allocate(4).putInt(0, frame.remaining());
            synchronized (this) {
                ByteBuffer[] both = {len, frame};
                while (frame.hasRemaining()) {
                    ch.write(both);
                }
            }
        }
    }

    /** A seen gap in a guest's DATA sequence: {@code [expected, got)} never arrived. */
    public record Gap(long expected, long got, long nanos, String port) {
        public long lost() {
            return got - expected;
        }
    }

    /** A RARP or ARP frame: when, from which MAC, on which port. */
    public record Announce(long nanos, String kind, String mac, String port) {
    }

    /** A MAC the switch saw on a new port. */
    public record Move(long nanos, String mac, String from, String to) {
    }

    /** One guest's traffic as the peer saw it. */
    public record FlowStats(long received, long lastSeq, long lost, long dupsOrReorders, List<Gap> gaps,
                            long repliesSent, String port, long lastReceivedNanos) {
    }

    private static final class Flow {
        long received;
        long lastSeq;
        long lost;
        long dups;
        final List<Gap> gaps = new ArrayList<>();
        long repliesSent;
        /** Send times of the last replies, by reply number modulo its length (grows to {@link #SENT_AT_WINDOW}). */
        long[] sentAt = new long[1024];
        long lastReceivedNanos;
    }

    private TrafficPeer(DatagramChannel udp, ServerSocketChannel stream, SocketAddress address) {
        this.udp = udp;
        this.stream = stream;
        this.address = address;
    }

    /** A peer on a UDP socket bound to {@code bind} (port 0: any). */
    public static TrafficPeer udp(InetSocketAddress bind) throws IOException {
        DatagramChannel ch = DatagramChannel.open().bind(bind);
        ch.setOption(java.net.StandardSocketOptions.SO_RCVBUF, 1 << 20);
        TrafficPeer p = new TrafficPeer(ch, null, ch.getLocalAddress());
        p.start("udp", p::udpLoop);
        return p;
    }

    /** A peer listening for stream back-ends: TCP at an {@link InetSocketAddress}, UNIX at a {@link UnixDomainSocketAddress}. */
    public static TrafficPeer stream(SocketAddress bind) throws IOException {
        ServerSocketChannel ch = bind instanceof UnixDomainSocketAddress
                ? ServerSocketChannel.open(StandardProtocolFamily.UNIX) : ServerSocketChannel.open();
        ch.bind(bind);
        TrafficPeer p = new TrafficPeer(null, ch, ch.getLocalAddress());
        p.start("accept", p::acceptLoop);
        return p;
    }

    public SocketAddress address() {
        return address;
    }

    /** The UDP or TCP port (for an {@link InetSocketAddress} peer). */
    public int port() {
        return ((InetSocketAddress) address).getPort();
    }

    private void start(String what, Runnable r) {
        Thread t = new Thread(r, "traffic-peer-" + what);
        t.setDaemon(true);
        threads.add(t);
        t.start();
    }

    private void udpLoop() {
        ByteBuffer buf = ByteBuffer.allocate(MAX_FRAME);
        while (!closed) {
            try {
                buf.clear();
                SocketAddress from = udp.receive(buf);
                buf.flip();
                frame(new UdpPort(udp, from), buf);
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                if (closed) {
                    return;
                }
            }
        }
    }

    private void acceptLoop() {
        int n = 0;
        while (!closed) {
            try {
                SocketChannel c = stream.accept();
                connections.add(c);
                String name = "stream#" + n++;
                start(name, () -> streamLoop(c, new StreamPort(c, name)));
            } catch (IOException e) {
                return;
            }
        }
    }

    private void streamLoop(SocketChannel c, StreamPort port) {
        ByteBuffer len = ByteBuffer.allocate(4);
        ByteBuffer buf = ByteBuffer.allocate(MAX_FRAME);
        try {
            while (!closed) {
                len.clear();
                if (!readFully(c, len)) {
                    return;
                }
                int n = len.getInt(0);
                if (n < 0 || n > MAX_FRAME) {
                    return; // a hostile length: the connection ends
                }
                buf.clear().limit(n);
                if (!readFully(c, buf)) {
                    return;
                }
                buf.flip();
                frame(port, buf);
            }
        } catch (IOException e) {
            // the back-end went away
        } finally {
            try {
                c.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }

    private static boolean readFully(SocketChannel c, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (c.read(b) < 0) {
                return false;
            }
        }
        return true;
    }

    // ---- the switch and the checker ----

    private synchronized void frame(Port from, ByteBuffer f) throws IOException {
        long now = System.nanoTime();
        received++;
        int len = f.remaining();
        if (len < 14) {
            dropped++;
            return;
        }
        long dst = mac(f, 0);
        long src = mac(f, 6);
        int type = f.getShort(12) & 0xffff;
        Port old = table.put(src, from);
        if (old != null && !old.name().equals(from.name())) {
            moves.add(new Move(now, fmt(src), old.name(), from.name()));
        }
        if (type == Rarp.ETHERTYPE || type == NetTraffic.ETHERTYPE_ARP) {
            announces.add(new Announce(now, type == Rarp.ETHERTYPE ? "rarp" : "arp", fmt(src), from.name()));
        }
        if (dst == 0xffffffffffffL) {
            for (Map.Entry<Long, Port> e : table.entrySet()) {
                if (e.getKey() != src && !e.getValue().name().equals(from.name())) {
                    e.getValue().send(f.duplicate());
                    forwarded++;
                }
            }
            return;
        }
        if (dst == NetTraffic.macToLong(NetTraffic.PEER_MAC)) {
            check(from, src, f, now);
            return;
        }
        Port to = table.get(dst);
        if (to != null) {
            to.send(f.duplicate());
            forwarded++;
        } else {
            dropped++;
        }
    }

    private void check(Port from, long src, ByteBuffer f, long now) throws IOException {
        if (f.remaining() < NetTraffic.MIN_FRAME || (f.getShort(12) & 0xffff) != NetTraffic.ETHERTYPE
                || f.getInt(14) != NetTraffic.MAGIC || f.get(18) != NetTraffic.DATA) {
            dropped++;
            return;
        }
        long seq = f.getLong(20);
        Flow fl = flows.computeIfAbsent(src << 8 | (f.get(19) & 0xff), k -> new Flow());
        fl.received++;
        fl.lastReceivedNanos = now;
        if (seq <= fl.lastSeq) {
            fl.dups++;
        } else {
            if (seq != fl.lastSeq + 1) {
                fl.lost += seq - fl.lastSeq - 1;
                fl.gaps.add(new Gap(fl.lastSeq + 1, seq, now, from.name()));
            }
            fl.lastSeq = seq;
        }
        long reply = ++fl.repliesSent;
        if (reply >= fl.sentAt.length && fl.sentAt.length < SENT_AT_WINDOW) {
            fl.sentAt = java.util.Arrays.copyOf(fl.sentAt, fl.sentAt.length * 2);
        }
        fl.sentAt[(int) (reply & (fl.sentAt.length - 1))] = now;
        ByteBuffer r = ByteBuffer.allocate(f.remaining()).order(ByteOrder.BIG_ENDIAN);
        r.put(0, f, 0, f.remaining());
        putMac(r, 0, src);
        r.put(6, NetTraffic.PEER_MAC);
        r.put(18, (byte) NetTraffic.REPLY);
        r.putLong(20, reply);
        r.putLong(28, seq);
        Port to = table.get(src);
        to.send(r);
    }

    private static long mac(ByteBuffer f, int at) {
        long v = 0;
        for (int i = 0; i < 6; i++) {
            v = v << 8 | (f.get(at + i) & 0xff);
        }
        return v;
    }

    private static void putMac(ByteBuffer b, int at, long mac) {
        for (int i = 5; i >= 0; i--) {
            b.put(at + i, (byte) mac);
            mac >>>= 8;
        }
    }

    private static String fmt(long mac) {
        return dev.ferry.virtio.net.NetOptions.format(NetTraffic.longToMac(mac));
    }

    // ---- what it saw ----

    /** One guest's traffic (all zero before its first frame). */
    public synchronized FlowStats flow(byte[] mac) {
        return flow(mac, 0);
    }

    /**
     * One flow of a guest: its DATA frames with flow byte {@code flow} (offset 19; a multiqueue
     * guest sends one flow per queue pair). Each flow has its own sequence numbers both ways.
     */
    public synchronized FlowStats flow(byte[] mac, int flow) {
        Flow f = flows.get(NetTraffic.macToLong(mac) << 8 | flow);
        if (f == null) {
            return new FlowStats(0, 0, 0, 0, List.of(), 0, null, 0);
        }
        Port p = table.get(NetTraffic.macToLong(mac));
        return new FlowStats(f.received, f.lastSeq, f.lost, f.dups, List.copyOf(f.gaps), f.repliesSent,
                p == null ? null : p.name(), f.lastReceivedNanos);
    }

    /**
     * How many of a flow's most recent send times the peer keeps: a peer that runs for hours (a
     * demo, a soak) must not grow with every frame.
     */
    public static final int SENT_AT_WINDOW = 1 << 16;

    /**
     * When the peer sent its reply number {@code seq} to {@code mac} (System.nanoTime), or -1 — also
     * for a reply older than the last {@link #SENT_AT_WINDOW}.
     */
    public synchronized long sentAt(byte[] mac, long seq) {
        Flow f = flows.get(NetTraffic.macToLong(mac) << 8);
        if (f == null || seq < 1 || seq > f.repliesSent || f.repliesSent - seq >= f.sentAt.length) {
            return -1;
        }
        return f.sentAt[(int) (seq & (f.sentAt.length - 1))];
    }

    public synchronized List<Announce> announces() {
        return List.copyOf(announces);
    }

    public synchronized List<Move> moves() {
        return List.copyOf(moves);
    }

    /** The port the switch sends {@code mac}'s frames to now, or null. */
    public synchronized String portOf(byte[] mac) {
        Port p = table.get(NetTraffic.macToLong(mac));
        return p == null ? null : p.name();
    }

    public synchronized long framesReceived() {
        return received;
    }

    public synchronized String report() {
        StringBuilder b = new StringBuilder("frames " + received + ", forwarded " + forwarded + ", dropped " + dropped);
        flows.forEach((key, f) -> b.append("\n  guest ").append(fmt(key >>> 8))
                .append((key & 0xff) != 0 ? " flow " + (key & 0xff) : "").append(": received ").append(f.received)
                .append(", last seq ").append(f.lastSeq).append(", lost ").append(f.lost).append(" in ")
                .append(f.gaps.size()).append(" gap(s), dup/reorder ").append(f.dups)
                .append(", replies ").append(f.repliesSent));
        announces.forEach(a -> b.append("\n  announce ").append(a));
        return b.toString();
    }

    @Override
    public void close() {
        closed = true;
        try {
            if (udp != null) {
                udp.close();
            }
            if (stream != null) {
                stream.close();
                if (address instanceof UnixDomainSocketAddress u) {
                    Files.deleteIfExists(u.getPath());
                }
            }
            for (SocketChannel c : connections) {
                c.close();
            }
        } catch (IOException e) {
            // closing
        }
        for (Thread t : threads) {
            try {
                t.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** {@code udp:HOST:PORT | tcp:HOST:PORT | unix:PATH [seconds]}: runs and reports every second. */
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: TrafficPeer udp:HOST:PORT | tcp:HOST:PORT | unix:PATH [seconds]");
            System.exit(2);
        }
        String a = args[0];
        TrafficPeer p;
        if (a.startsWith("udp:") || a.startsWith("tcp:")) {
            String hp = a.substring(4);
            int colon = hp.lastIndexOf(':');
            InetSocketAddress s = new InetSocketAddress(hp.substring(0, colon), Integer.parseInt(hp.substring(colon + 1)));
            p = a.startsWith("udp:") ? udp(s) : stream(s);
        } else if (a.startsWith("unix:")) {
            p = stream(UnixDomainSocketAddress.of(Path.of(a.substring(5))));
        } else {
            System.err.println("unknown address " + a);
            System.exit(2);
            return;
        }
        long seconds = args.length > 1 ? Long.parseLong(args[1]) : Long.MAX_VALUE;
        System.out.println("traffic peer on " + p.address());
        try (p) {
            for (long s = 0; s < seconds; s++) {
                Thread.sleep(1000);
                System.out.println(p.report());
            }
        }
    }
}
