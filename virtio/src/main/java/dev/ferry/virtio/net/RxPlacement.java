package dev.ferry.virtio.net;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;

/**
 * Writes one received frame (the net header and the frame, in a native buffer) into a receive
 * queue's chains: into one chain, or with MRG_RXBUF into as many as it needs, their count in the
 * header's {@code num_buffers}; the chains are pushed, not published. The rule both virtio-net
 * models follow ({@link VirtioNet}'s RX path and the vhost-user back-end's multiqueue model):
 * <ul>
 *   <li>too few chains: nothing is taken (the popped chains go back), the frame waits;</li>
 *   <li>a frame bigger than the next chain without MRG_RXBUF, or than a whole ring of chains with
 *       it, is the network's doing: nothing is taken, the caller drops and counts it;</li>
 *   <li>a chain with no device-writable byte, or a first chain without room for the header, is the
 *       driver's protocol error: nothing is taken and {@link VirtqueueError} says why.</li>
 * </ul>
 * One instance per receive path (its chain scratch list is reused: no allocation per frame).
 */
public final class RxPlacement {
    public enum Outcome { DELIVERED, WAIT, TOO_BIG }

    /** The chains one frame takes; reused (it keeps its capacity: no allocation per frame once warm). */
    private final java.util.ArrayList<DescriptorChain> chains = new java.util.ArrayList<>();
    private int used;
    private String tooBig;

    /** Places {@code len} bytes (header included) at {@code buf} into {@code vq}'s chains. */
    public Outcome place(SplitVirtqueue vq, DeviceMemory memory, long buf, int len, boolean mergeable) {
        chains.clear();
        long room = 0;
        used = 0;
        while (room < len) {
            DescriptorChain c = vq.pop();
            if (c == null) {
                vq.rewind(chains.size());
                chains.clear();
                return Outcome.WAIT;
            }
            chains.add(c);
            int n = chains.size();
            long w = c.writableBytes();
            if (w == 0) {
                rewind(vq);
                throw new VirtqueueError(vq.name(), "virtio-net receive queue contains no in buffers (head "
                        + c.head() + ")");
            }
            if (n == 1 && w < NetHeader.SIZE) {
                rewind(vq);
                throw new VirtqueueError(vq.name(), "virtio-net RX chain head " + c.head() + " has " + w
                        + " device-writable bytes, the header alone is " + NetHeader.SIZE);
            }
            room += w;
            if (room < len && (!mergeable || n >= vq.size())) {
                rewind(vq);
                tooBig = mergeable ? "the whole ring (" + n + " chains) holds " + room + " bytes"
                        : "RX chain head " + c.head() + " holds " + w + " bytes (MRG_RXBUF not negotiated)";
                return Outcome.TOO_BIG;
            }
        }
        int n = chains.size();
        NetHeader.setNumBuffers(buf, n);
        long off = 0;
        for (DescriptorChain c : chains) {
            long base = off;
            long moved = c.writer().transferFrom(len - off, (gpa, piece, done) -> {
                memory.copyFromNative(buf + base + done, gpa, piece);
                return piece;
            });
            off += moved;
            vq.push(c, moved);
        }
        chains.clear();
        used = n;
        return Outcome.DELIVERED;
    }

    private void rewind(SplitVirtqueue vq) {
        vq.rewind(chains.size());
        chains.clear();
    }

    /** The chains the last delivered frame took (above 1: it spanned buffers). */
    public int chainsUsed() {
        return used;
    }

    /** Why the last {@link Outcome#TOO_BIG} frame did not fit. */
    public String tooBigReason() {
        return tooBig;
    }
}
