package dev.ferry.vhostuser.backend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.Sockets;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.blk.VirtioBlk;
import dev.ferry.virtio.net.NetBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.vhostuser.proto.VhostUserChannel;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Semaphore;

/**
 * Serves one virtio device model from Java over vhost-user to one front-end at a time — QEMU,
 * Ferry's own front-end, the vendor check.
 * <pre>
 *   try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(sock))) {
 *       ... a front-end connects to sock, negotiates, runs I/O, migrates ...
 *   }
 * </pre>
 *
 * <h2>Threads</h2>
 * A connection thread accepts (server mode) or connects, retrying every 100 ms (client mode),
 * hands the connection to the back-end's device event loop, and waits for it to end before taking
 * the next. The loop thread reads each message, applies it ({@link BackendSession}) and runs the
 * device model (kicks, completions); the model's I/O threads move data. A connection that hangs
 * up, breaks the framing or stalls mid-message ends; the device is reset and the next front-end
 * is served. Nothing a front-end sends ends the back-end.
 *
 * <p>Owns the model, the loop, the listening socket (removed at {@link #close}) and every
 * connection's resources.
 */
public final class VhostUserBackend implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserBackend.class);
    private static final long RECONNECT_MS = 100;
    private final String name;
    private final VirtioDeviceModel model;
    private final BackendOptions options;
    private final DeviceEventLoop loop;
    private final BackendStats stats;
    private final DeviceRings rings;
    private final Fd listener;
    private final Thread connector;
    private final Semaphore ended = new Semaphore(0);
    private volatile boolean closing;

    // Loop-thread state of the current connection.
    private VhostUserChannel channel;
    private BackendSession session;
    private DeviceEventLoop.Registration registration;

    private VhostUserBackend(String name, VirtioDeviceModel model, BackendOptions options) {
        this.name = name;
        this.model = model;
        this.options = options;
        this.stats = new BackendStats(model.queueCount());
        this.loop = new DeviceEventLoop("vhost-user-" + name);
        this.rings = new DeviceRings(name, model, loop, options.faults(), stats);
        Fd l = null;
        try {
            if (!options.client()) {
                l = Sockets.unixListen(options.socket(), 4);
            }
        } catch (RuntimeException e) {
            loop.close();
            throw e;
        }
        this.listener = l;
        this.connector = new Thread(this::connections, "ferry-vhost-user-" + name);
        connector.setDaemon(true);
    }

    /**
     * Serves {@code model} (owned from here on: closed with the back-end) at {@code options}'
     * socket. In server mode the socket is listening when this returns.
     */
    public static VhostUserBackend serve(String name, VirtioDeviceModel model, BackendOptions options) {
        VhostUserBackend b;
        try {
            b = new VhostUserBackend(name, model, options);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
        b.connector.start();
        if (!options.faults().isEmpty()) {
            LOG.warn("{}: serving with injected faults {} (a test aid)", name, options.faults());
        }
        return b;
    }

    /**
     * A virtio-blk back-end on {@code blk}'s image.
     *
     * @throws IOException naming the image when it cannot be opened
     */
    public static VhostUserBackend serveBlk(BlkOptions blk, BackendOptions options) throws IOException {
        String id = "vhost-user-blk";
        VirtioBlk model = new VirtioBlk(id, blk, false, (device, op, reason) ->
                LOG.warn("{}: {} error under the stop policy: {}", device, op, reason));
        return serve(id, model, options);
    }

    /**
     * A virtio-net back-end whose frames go to and come from {@code net} (owned from here on):
     * SEND_RARP (protocol feature RARP) sends a RARP announcement for the MAC it names there, and
     * that is the only announce it makes: a state migrated in (DEVICE_STATE) does not make it
     * announce by itself; the front-end decides (the guest's GUEST_ANNOUNCE, or SEND_RARP).
     * {@code options.guestAnnounce()} offers GUEST_ANNOUNCE, as DPDK's vhost library does.
     */
    public static VhostUserBackend serveNet(NetOptions options, NetBackend net, BackendOptions backend) {
        VirtioNet model;
        try {
            model = new VirtioNet("vhost-user-net", options, net);
            model.leaveAnnounceToFrontEnd();
        } catch (RuntimeException e) {
            net.close();
            throw e;
        }
        return serve("vhost-user-net", model, backend);
    }

    /**
     * A virtio-net back-end with {@code pairs} rx/tx queue pairs (GET_QUEUE_NUM 2·pairs, protocol
     * feature MQ): one pair is {@link #serveNet(NetOptions, NetBackend, BackendOptions)}'s
     * {@link VirtioNet}, more a {@link MultiQueueNet} (the front-end keeps the control queue).
     */
    public static VhostUserBackend serveNet(NetOptions options, NetBackend net, BackendOptions backend, int pairs) {
        if (pairs == 1) {
            return serveNet(options, net, backend);
        }
        return serve("vhost-user-net", new MultiQueueNet("vhost-user-net", pairs, options.queueSize(), net,
                options.guestAnnounce()), backend);
    }

    /** The network back-end of a net model (frames for SEND_RARP), or null for any other device. */
    static NetBackend netBackend(VirtioDeviceModel model) {
        if (model instanceof VirtioNet n) {
            return n.backend();
        }
        return model instanceof MultiQueueNet m ? m.backend() : null;
    }

    public Path socket() {
        return options.socket();
    }

    public BackendStats stats() {
        return stats;
    }

    /** The device model served (for reports and tests). */
    public VirtioDeviceModel model() {
        return model;
    }

    // ---- the connection thread ----

    private void connections() {
        while (!closing) {
            Fd fd = next();
            if (fd == null) {
                return;
            }
            try {
                loop.call(() -> {
                    open(fd);
                    return null;
                });
            } catch (RuntimeException e) {
                if (!closing) {
                    LOG.warn("{}: cannot serve a connection: {}", name, e.toString());
                }
                fd.close();
                continue;
            }
            ended.acquireUninterruptibly();
        }
    }

    /** The next front-end's connection, or null when closing. */
    private Fd next() {
        while (!closing) {
            try {
                if (!options.client()) {
                    return Sockets.accept(listener);
                }
                return Sockets.unixConnect(options.socket());
            } catch (NativeCallException | IllegalStateException e) {
                if (closing) {
                    return null;
                }
                if (!options.client()) {
                    LOG.warn("{}: accept on {} failed: {}", name, options.socket(), e.getMessage());
                }
                try {
                    Thread.sleep(RECONNECT_MS);
                } catch (InterruptedException x) {
                    return null;
                }
            }
        }
        return null;
    }

    // ---- the loop thread ----

    private void open(Fd fd) {
        if (closing) {
            fd.close();
            ended.release();
            return;
        }
        stats.connections.incrementAndGet();
        NetBackend net = netBackend(model);
        if (net != null) {
            int dropped = net.discardQueued();
            if (dropped > 0) {
                LOG.info("{}: dropped {} frames that arrived while no front-end ran the rings", name, dropped);
            }
        }
        channel = new VhostUserChannel(fd, options.socket() + " (front-end)");
        session = new BackendSession(name, channel, model, rings, options.faults(), stats);
        registration = loop.addFd(channel.socket(), Linux.EPOLLIN, events -> readable());
        LOG.info("{}: front-end connected on {}", name, options.socket());
    }

    private void readable() {
        if (session == null) {
            return;
        }
        VhostUserMessage m;
        try {
            m = channel.receive(options.messageTimeoutMs());
        } catch (VhostUserException e) {
            end(e.getMessage());
            return;
        }
        boolean keep;
        try (m) {
            keep = session.handle(m);
        }
        if (!keep) {
            end(channel.brokenReason() != null ? channel.brokenReason() : stats.lastRefusal);
        }
    }

    private void end(String why) {
        if (session == null) {
            return;
        }
        LOG.info("{}: front-end connection ended: {}", name, why);
        stats.lastDisconnect = why;
        registration.close();
        registration = null;
        try {
            session.close();
        } catch (RuntimeException e) {
            LOG.warn("{}: cleaning up the connection: {}", name, e.toString());
        }
        session = null;
        channel.close();
        channel = null;
        ended.release();
    }

    /** Ends the current connection (if any), as if the front-end had hung up; the next is then served. */
    public void disconnect() {
        loop.call(() -> {
            end("disconnected by the back-end");
            return null;
        });
    }

    /** Ring {@code queue}'s state in the table of {@link Vring} (tests). */
    String ringState(int queue) {
        return loop.call(() -> rings.rings[queue].state());
    }

    /** True while a front-end is connected. */
    public boolean connected() {
        return loop.call(() -> session != null);
    }

    @Override
    public void close() {
        if (closing) {
            return;
        }
        closing = true;
        if (listener != null) {
            Sockets.shutdown(listener);
        }
        try {
            loop.call(() -> {
                end("back-end closing");
                return null;
            });
        } catch (RuntimeException e) {
            LOG.warn("{}: closing the connection: {}", name, e.toString());
        }
        connector.interrupt();
        ended.release();
        try {
            connector.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        loop.close();
        model.close();
        if (listener != null) {
            listener.close();
            try {
                Files.deleteIfExists(options.socket());
            } catch (IOException e) {
                LOG.debug("{}: cannot remove {}: {}", name, options.socket(), e.getMessage());
            }
        }
    }

    @Override
    public String toString() {
        return "vhost-user back-end " + name + " on " + options.socket();
    }
}
