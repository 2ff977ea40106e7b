package dev.ferry.virtio.net;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The RX path of a {@link VirtioNet}: the back-end's fd is watched for readability while the RX
 * queue has buffers; each frame is read into the device's native RX buffer, filtered, and written
 * into as many RX chains as it needs (one without MRG_RXBUF), with {@code num_buffers} in the
 * header. When the RX queue runs dry the frame waits here and the fd is unwatched until the
 * driver kicks the RX queue. Loop thread only ({@link #backendFailed} is read on any thread).
 *
 * <p>A frame the driver's buffers cannot hold — bigger than the next RX chain without
 * MRG_RXBUF (a Linux driver without it posts 1518-byte buffers), or than every chain of a full
 * ring with it — is the network's doing, not the driver's: it is dropped and counted
 * ({@code rx-too-big}, the first one logged), the chains stay available for the next frame, as a
 * NIC drops an oversized frame and as QEMU's virtio-net does. A protocol violation of the driver
 * itself (a chain with no writable buffer, a first buffer without room for the header) is
 * NEEDS_RESET.
 */
final class NetRx {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioNet.class);
    /** Frames taken from the back-end per readiness callback, so TX and kicks get their turn. */
    private static final int RX_BURST = 64;

    private final VirtioNet net;
    private final RxPlacement placement = new RxPlacement();
    private DeviceEventLoop.Registration rxWatch;
    /** Length (header included) of the frame in the RX buffer waiting for RX buffers, or 0. */
    private int rxPending;
    private volatile boolean backendFailed;

    NetRx(VirtioNet net) {
        this.net = net;
    }

    /** The back-end reported a failure it will not recover from; the device receives nothing more. */
    boolean backendFailed() {
        return backendFailed;
    }

    /** The driver kicked the RX queue: deliver the waiting frame, then watch the back-end again. */
    void kicked() {
        if (rxPending > 0) {
            deliverPending();
        }
        watch(rxPending == 0);
    }

    /** The link went up or down while the device serves. */
    void linkChanged(boolean up) {
        watch(up && rxPending == 0);
    }

    /** At stop: a frame waiting for RX buffers is dropped and counted. */
    void dropPendingAtStop() {
        if (rxPending > 0) {
            rxPending = 0;
            net.stats.rxDroppedAtStop.incrementAndGet();
        }
    }

    /** Watches the back-end for frames when {@code on}, the link is up and the device serves. */
    void watch(boolean on) {
        boolean want = on && net.serving && !backendFailed && (net.status & NetConfig.S_LINK_UP) != 0;
        if (want && rxWatch == null) {
            rxWatch = net.ctx.loop().addFd(net.backend.fd(), Linux.EPOLLIN, ev -> receive());
        } else if (!want && rxWatch != null) {
            rxWatch.close();
            rxWatch = null;
        }
    }

    /** The back-end's fd is readable: deliver up to a burst of frames. Loop thread. */
    private void receive() {
        VirtioContext ctx = net.ctx;
        if (!net.serving || ctx == null) {
            return;
        }
        SplitVirtqueue vq = ctx.queue(VirtioNet.RX);
        if (vq == null) {
            watch(false);
            return;
        }
        long rxBuf = net.rxBuf;
        int delivered = 0;
        for (int i = 0; i < RX_BURST && rxPending == 0; i++) {
            int n;
            try {
                n = net.backend.receive(rxBuf, VirtioNet.BUFFER);
            } catch (NetBackendException e) {
                LOG.warn("{}: {}; the device receives nothing more", net.id, e.getMessage());
                backendFailed = true;
                watch(false);
                break;
            } catch (NativeCallException e) {
                net.backendError(e); // e.g. ECONNREFUSED on a UDP socket whose peer is not up yet
                continue;
            }
            if (n < 0) {
                break;
            }
            if (n < NetHeader.SIZE + 14 || !net.filter.accepts(net.mac, rxBuf + NetHeader.SIZE)) {
                net.stats.rxFiltered.incrementAndGet();
                continue;
            }
            if (net.backend.vnetHeader() && !acceptHostHeader()) {
                net.stats.rxFiltered.incrementAndGet(); // a GSO frame no feature lets the guest take
                continue;
            }
            rxPending = n;
            Boolean ok = deliver(vq);
            if (ok == null) {
                return; // NEEDS_RESET
            }
            if (ok) {
                delivered++;
            }
        }
        if (delivered > 0 && net.ctx != null) {
            vq.publish();
            net.ctx.notifyQueue(VirtioNet.RX);
        }
        if (rxPending > 0) {
            net.stats.rxNoBuffers.incrementAndGet();
            watch(false); // until the driver adds buffers (its kick ends up in deliverPending)
            if (net.ctx != null && net.ctx.queue(VirtioNet.RX) != null && vq.setNotificationEnabled(true)) {
                deliverPending();
            }
        }
    }

    /**
     * A TAP's header on a received frame, made what the driver negotiated: without GUEST_CSUM the
     * flags must be zero (spec 5.1.6.4.1; the kernel sets DATA_VALID), and a GSO frame cannot be
     * taken at all since no GUEST_TSO/UFO is offered. False: drop the frame.
     */
    private boolean acceptHostHeader() {
        long rxBuf = net.rxBuf;
        if (NetHeader.gsoType(rxBuf) != NetHeader.GSO_NONE) {
            return false;
        }
        if (!Virtio.has(net.ctx.features(), VirtioNet.F_GUEST_CSUM)) {
            NativeMemory.putByte(rxBuf + NetHeader.FLAGS, (byte) 0);
        }
        return true;
    }

    private void deliverPending() {
        SplitVirtqueue vq = net.ctx.queue(VirtioNet.RX);
        if (vq == null) {
            return;
        }
        Boolean ok = deliver(vq);
        if (ok == null) {
            return;
        }
        if (ok) {
            vq.publish();
            net.ctx.notifyQueue(VirtioNet.RX);
        }
        if (rxPending == 0) {
            watch(true); // delivered, or dropped as too big: the next frame may come
        }
    }

    /**
     * Writes the frame in the RX buffer ({@link #rxPending} bytes with the header) into RX chains
     * and pushes them (not published; {@link RxPlacement}). True when delivered; false when the
     * queue lacks buffers (the frame waits) or when it was dropped as too big ({@link #rxPending}
     * 0) — nothing popped stays popped either way; null when the driver broke the protocol.
     */
    private Boolean deliver(SplitVirtqueue vq) {
        VirtioContext ctx = net.ctx;
        int len = rxPending;
        RxPlacement.Outcome o;
        try {
            o = placement.place(vq, ctx.memory(), net.rxBuf, len, Virtio.has(ctx.features(), VirtioNet.F_MRG_RXBUF));
        } catch (VirtqueueError e) {
            rxPending = 0;
            ctx.deviceError("queue " + VirtioNet.RX + ": " + e.getMessage());
            return null;
        }
        if (o == RxPlacement.Outcome.WAIT) {
            return false;
        }
        rxPending = 0;
        if (o == RxPlacement.Outcome.TOO_BIG) {
            if (net.stats.rxTooBig.getAndIncrement() == 0) {
                LOG.info("{}: dropped a received frame of {} bytes with its header: {}; later ones are only counted"
                        + " (rx-too-big)", net.id, len, placement.tooBigReason());
            }
            return false;
        }
        if (placement.chainsUsed() > 1) {
            net.stats.rxMultiBuffer.incrementAndGet();
        }
        net.stats.rxFrames.incrementAndGet();
        net.stats.rxBytes.addAndGet(len - NetHeader.SIZE);
        return true;
    }
}
