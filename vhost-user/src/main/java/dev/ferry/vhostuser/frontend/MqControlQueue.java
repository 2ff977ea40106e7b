package dev.ferry.vhostuser.frontend;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.net.NetControl;
import dev.ferry.virtio.queue.ChainReader;
import dev.ferry.virtio.queue.VirtqueueError;

/**
 * The control queue of a multiqueue {@link VhostUserNet}, served by the front-end (the back-end
 * never sees it, as with QEMU). One command is served: class MQ (4), VQ_PAIRS_SET (0) with
 * {@code le16 virtqueue_pairs}, accepted for 1..N with MQ negotiated; every other request, a
 * wrong data length or a count out of range is answered ERR and changes nothing. A chain without
 * class and command, or without a writable ack byte, is a protocol error: NEEDS_RESET. Loop
 * thread only.
 */
final class MqControlQueue {
    static final int MQ_VQ_PAIRS_SET = 0;
    /** Data bytes looked at; a longer request is answered ERR without reading it. */
    private static final int MAX_DATA = 64;
    private final VhostUserNet nic;
    private final byte[] data = new byte[MAX_DATA];
    private volatile long commands;
    private volatile long errors;

    MqControlQueue(VhostUserNet nic) {
        this.nic = nic;
    }

    long commands() {
        return commands;
    }

    long errors() {
        return errors;
    }

    /** Serves every available request on queue {@code index} ({@link NetControl#serve}). */
    void serve(VirtioContext ctx, int index) {
        try {
            NetControl.serve(ctx, index, this::command, ack -> {
                commands++;
                if (ack != NetControl.OK) {
                    errors++;
                }
            });
        } catch (VirtqueueError e) {
            ctx.deviceError("queue " + index + ": " + e.getMessage());
        }
    }

    private int command(int cls, int cmd, ChainReader r, long features) {
        long len = r.remaining();
        if (cls != NetControl.CLASS_MQ || cmd != MQ_VQ_PAIRS_SET || len != 2
                || !Virtio.has(features, VhostUserNet.F_MQ)) {
            return NetControl.ERR;
        }
        r.readFully(data, 0, 2);
        int pairs = (data[0] & 0xff) | (data[1] & 0xff) << 8;
        if (pairs < 1 || pairs > nic.pairs()) {
            return NetControl.ERR;
        }
        return nic.setEnabledPairs(pairs) ? NetControl.OK : NetControl.ERR;
    }
}
