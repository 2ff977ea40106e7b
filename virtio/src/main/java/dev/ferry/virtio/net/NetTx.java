package dev.ferry.virtio.net;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;

/**
 * The TX path of a {@link VirtioNet}: a kick sends every available chain (header and frame copied
 * from guest RAM into the device's native TX buffer, then one send to the back-end) and returns
 * them used, with notifications off while a burst runs. Loop thread only.
 */
final class NetTx {
    private final VirtioNet net;

    NetTx(VirtioNet net) {
        this.net = net;
    }

    /** The driver kicked the TX queue. */
    void transmit() {
        VirtioContext ctx = net.ctx;
        SplitVirtqueue vq = ctx.queue(VirtioNet.TX);
        if (vq == null) {
            return;
        }
        while (true) {
            int n = 0;
            DescriptorChain c;
            while ((c = vq.pop()) != null) {
                if (!sendOne(c)) {
                    return; // NEEDS_RESET: the transport stops serving the queue; the ring is as the driver left it
                }
                if (n++ == 0) {
                    vq.setNotificationEnabled(false); // no kicks while this burst runs
                }
                vq.push(c, 0);
            }
            if (n == 0) {
                return;
            }
            vq.publish();
            ctx.notifyQueue(VirtioNet.TX);
            if (!vq.setNotificationEnabled(true)) {
                return;
            }
        }
    }

    /** Sends one TX chain's frame; false when the chain broke the protocol (device error raised). */
    private boolean sendOne(DescriptorChain c) {
        VirtioContext ctx = net.ctx;
        NetStats stats = net.stats;
        NetBackend backend = net.backend;
        long txBuf = net.txBuf;
        long readable = c.readableBytes();
        if (readable < NetHeader.SIZE) {
            ctx.deviceError("virtio-net header incorrect: TX chain head " + c.head() + " has " + readable
                    + " device-readable bytes, the header alone is " + NetHeader.SIZE);
            return false;
        }
        if (readable > VirtioNet.BUFFER) {
            ctx.deviceError("virtio-net TX chain head " + c.head() + " holds a frame of " + (readable - NetHeader.SIZE)
                    + " bytes, more than " + NetBackend.MAX_FRAME);
            return false;
        }
        int len = (int) readable;
        DeviceMemory m = ctx.memory();
        c.reader().transferTo(len, (gpa, piece, done) -> {
            m.copyToNative(gpa, txBuf + done, piece);
            return piece;
        });
        int gso = NetHeader.gsoType(txBuf) & ~NetHeader.GSO_ECN;
        boolean csum = (NetHeader.flags(txBuf) & NetHeader.F_NEEDS_CSUM) != 0;
        if (len - NetHeader.SIZE < 14 || gso != NetHeader.GSO_NONE || (csum && !backend.vnetHeader())
                || (net.status & NetConfig.S_LINK_UP) == 0) {
            stats.txDropped.incrementAndGet();
            return true;
        }
        if (!backend.vnetHeader()) {
            NetHeader.clear(txBuf);
        }
        try {
            if (backend.send(txBuf, len)) {
                stats.txFrames.incrementAndGet();
                stats.txBytes.addAndGet(len - NetHeader.SIZE);
                if (c.readable().size() > 1) {
                    stats.txMultiBuffer.incrementAndGet();
                }
            } else {
                stats.txDropped.incrementAndGet();
            }
        } catch (NativeCallException e) {
            net.backendError(e);
            stats.txDropped.incrementAndGet();
        }
        return true;
    }
}
