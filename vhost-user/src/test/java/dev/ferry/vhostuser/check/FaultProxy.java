package dev.ferry.vhostuser.check;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sockets;
import dev.ferry.core.sys.Sys;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserChannel;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A vhost-user proxy between the check and a real back-end that injects one fault by rewriting
 * messages — the honest way to get a back-end that breaks exactly one promise:
 * <ul>
 *   <li>{@link Fault#UNLOGGED_WRITES}: SET_LOG_BASE never reaches the back-end (the proxy answers it),
 *       so the back-end writes guest memory with LOG_ALL set and no log;</li>
 *   <li>{@link Fault#WRONG_VRING_BASE}: GET_VRING_BASE's reply says one more than the back-end did;</li>
 *   <li>{@link Fault#IGNORE_DISABLE}: SET_VRING_ENABLE(0) never reaches the back-end (the proxy acks it),
 *       so the ring goes on writing guest memory;</li>
 *   <li>{@link Fault#NEED_REPLY_IN_REPLY}: the reply to GET_PROTOCOL_FEATURES echoes NEED_REPLY (flags 0xd);</li>
 *   <li>{@link Fault#LATER_VRING_BASES_PLUS_ONE}: the first GET_VRING_BASE reply passes, every later one says one
 *       more than the back-end did (a request counted as consumed that never completes);</li>
 *   <li>{@link Fault#NOT_MIGRATABLE}: LOG_ALL and LOG_SHMFD are taken out of what the back-end offers;</li>
 *   <li>{@link Fault#NONE} with {@code gateKicks}: the proxy holds kicks while a ring is disabled and
 *       passes one on at SET_VRING_ENABLE(1) — a disable-honouring front for a back-end that is not.</li>
 * </ul>
 * Every connection gets a connection to the back-end and two pump threads; descriptors pass
 * through (kick descriptors are replaced when gating). Test code; owns its sockets and threads.
 */
final class FaultProxy implements AutoCloseable {
    enum Fault { NONE, UNLOGGED_WRITES, WRONG_VRING_BASE, IGNORE_DISABLE, NEED_REPLY_IN_REPLY, NOT_MIGRATABLE,
        LATER_VRING_BASES_PLUS_ONE }

    private final Fd listener;
    private final Path upstream;
    private final Fault fault;
    private final boolean gateKicks;
    private final List<AutoCloseable> open = new CopyOnWriteArrayList<>();
    private final Thread acceptor;
    private volatile boolean closed;

    FaultProxy(Path socket, Path upstream, Fault fault, boolean gateKicks) {
        this.listener = Sockets.unixListen(socket, 4);
        this.upstream = upstream;
        this.fault = fault;
        this.gateKicks = gateKicks;
        this.acceptor = new Thread(this::acceptLoop, "fault-proxy-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    private void acceptLoop() {
        while (!closed) {
            Fd front;
            try {
                front = Sockets.accept(listener);
            } catch (NativeCallException e) {
                return;
            }
            Fd back;
            try {
                back = Sockets.unixConnect(upstream);
            } catch (NativeCallException e) {
                front.close();
                continue;
            }
            new Link(new VhostUserChannel(front, "front"), new VhostUserChannel(back, "back")).start();
        }
    }

    /** One proxied connection: front-end side, back-end side, and the kick gates of its rings. */
    private final class Link {
        final VhostUserChannel front;
        final VhostUserChannel back;
        final Gate[] gates = new Gate[VhostUser.MAX_FDS];
        int vringBases;

        Link(VhostUserChannel front, VhostUserChannel back) {
            this.front = front;
            this.back = back;
            open.add(front);
            open.add(back);
        }

        void start() {
            daemon(this::frontToBack, "fault-proxy-f2b");
            daemon(this::backToFront, "fault-proxy-b2f");
        }

        void frontToBack() {
            try {
                while (true) {
                    try (VhostUserMessage m = front.receive(-1)) {
                        if (fault == Fault.UNLOGGED_WRITES && m.request() == VhostUser.SET_LOG_BASE) {
                            front.send(VhostUserMessage.reply(VhostUser.SET_LOG_BASE, Payloads.u64(0)));
                            continue;
                        }
                        if (fault == Fault.IGNORE_DISABLE && m.request() == VhostUser.SET_VRING_ENABLE && m.size() == 8
                                && Payloads.vringState(m).num() == 0) {
                            if (m.needsReply()) {
                                front.send(VhostUserMessage.reply(m.request(), Payloads.u64(0)));
                            }
                            continue;
                        }
                        if (gateKicks && m.request() == VhostUser.SET_VRING_KICK && m.fdCount() == 1) {
                            int q = (int) (m.buffer().getLong() & 0xff);
                            if (q < gates.length) {
                                if (gates[q] != null) {
                                    gates[q].close();
                                }
                                gates[q] = new Gate(m.takeFd(0));
                                back.send(new VhostUserMessage(m.request(), m.flags(), m.payload(), gates[q].toBack.fd()));
                                continue;
                            }
                        }
                        if (gateKicks && m.request() == VhostUser.SET_VRING_ENABLE && m.size() == 8) {
                            var s = Payloads.vringState(m);
                            if (s.index() < gates.length && gates[s.index()] != null) {
                                gates[s.index()].enabled(s.num() != 0);
                            }
                        }
                        back.send(m);
                    }
                }
            } catch (VhostUserException | RuntimeException e) {
                shut();
            }
        }

        void backToFront() {
            try {
                while (true) {
                    try (VhostUserMessage m = back.receive(-1)) {
                        boolean base = m.request() == VhostUser.GET_VRING_BASE && m.size() == 8;
                        boolean lie = base && (fault == Fault.WRONG_VRING_BASE
                                || (fault == Fault.LATER_VRING_BASES_PLUS_ONE && vringBases++ > 0));
                        if (lie) {
                            var s = Payloads.vringState(m);
                            front.send(VhostUserMessage.reply(m.request(), Payloads.vringState(s.index(), s.num() + 1)));
                            continue;
                        }
                        if (fault == Fault.NOT_MIGRATABLE && m.size() == 8 && (m.request() == VhostUser.GET_FEATURES
                                || m.request() == VhostUser.GET_PROTOCOL_FEATURES)) {
                            long bit = m.request() == VhostUser.GET_FEATURES ? VhostUser.bit(VhostUser.F_LOG_ALL)
                                    : VhostUser.bit(VhostUser.PF_LOG_SHMFD);
                            front.send(VhostUserMessage.reply(m.request(), Payloads.u64(Payloads.u64(m) & ~bit)));
                            continue;
                        }
                        if (fault == Fault.NEED_REPLY_IN_REPLY && m.request() == VhostUser.GET_PROTOCOL_FEATURES) {
                            front.send(new VhostUserMessage(m.request(), m.flags() | VhostUser.FLAG_NEED_REPLY, m.payload()));
                            continue;
                        }
                        front.send(m);
                    }
                }
            } catch (VhostUserException | RuntimeException e) {
                shut();
            }
        }

        void shut() {
            front.close();
            back.close();
            for (Gate g : gates) {
                if (g != null) {
                    g.close();
                }
            }
        }
    }

    /** Passes the front-end's kicks to the back-end's eventfd while the ring is enabled. */
    private final class Gate implements AutoCloseable {
        final Fd fromFront;
        final EventFd toBack = new EventFd(Linux.EFD_NONBLOCK);
        volatile boolean enabled = true;
        volatile boolean stop;

        Gate(Fd fromFront) {
            this.fromFront = fromFront;
            daemon(this::pump, "fault-proxy-kick");
        }

        void enabled(boolean on) {
            enabled = on;
            if (on) {
                toBack.signal();
            }
        }

        void pump() {
            long pfd = NativeMemory.allocate(Linux.POLLFD_SIZE);
            try {
                while (!stop) {
                    NativeMemory.putInt(pfd, fromFront.get());
                    NativeMemory.putShort(pfd + 4, Linux.POLLIN);
                    NativeMemory.putShort(pfd + 6, (short) 0);
                    if (Sys.poll(pfd, 1, 50) > 0 && Sys.eventfdReadOrZero(fromFront.get()) != 0 && enabled) {
                        toBack.signal();
                    }
                }
            } catch (RuntimeException e) {
                // closed under us: the link is gone
            } finally {
                NativeMemory.free(pfd);
                fromFront.close();
                toBack.close();
            }
        }

        @Override
        public void close() {
            stop = true;
        }
    }

    private static void daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        t.start();
    }

    @Override
    public void close() throws Exception {
        closed = true;
        Sockets.shutdown(listener);
        acceptor.join(2_000);
        listener.close();
        List<AutoCloseable> all = new ArrayList<>(open);
        for (AutoCloseable c : all) {
            c.close();
        }
    }
}
