package dev.ferry.virtio.net;

import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.ChainReader;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;

import java.util.function.IntConsumer;

/**
 * The control queue's commands (net/description.tex 5.1.6.5): a request is
 * {@code u8 class | u8 command | command data} in device-readable buffers and one
 * device-writable {@code u8 ack} (OK 0, ERR 1) after them. Ferry serves the classes its features
 * offer: RX mode (CTRL_RX), the MAC filter table and address (CTRL_RX, CTRL_MAC_ADDR), the
 * announce ack (GUEST_ANNOUNCE) and, on a device with MQ (vhost-user-net), the queue pairs; every
 * other class or command is answered ERR.
 * <pre>
 *   RX 0:        PROMISC 0, ALLMULTI 1, ALLUNI 2, NOMULTI 3, NOUNI 4, NOBCAST 5   data: u8 on/off
 *   MAC 1:       TABLE_SET 0   data: le32 n, n x mac[6] (unicast), le32 m, m x mac[6] (multicast)
 *                ADDR_SET 1    data: mac[6]
 *   VLAN 2, GUEST_OFFLOADS 5: not offered (ERR)
 *   ANNOUNCE 3:  ACK 0         no data; clears S_ANNOUNCE
 *   MQ 4:        VQ_PAIRS_SET 0  data: le16 pairs (MQ negotiated; the device checks 1..N)
 * </pre>
 */
public final class NetControl {
    public static final int OK = 0;
    public static final int ERR = 1;

    public static final int CLASS_RX = 0;
    public static final int RX_PROMISC = 0;
    public static final int RX_ALLMULTI = 1;
    public static final int RX_ALLUNI = 2;
    public static final int RX_NOMULTI = 3;
    public static final int RX_NOUNI = 4;
    public static final int RX_NOBCAST = 5;

    public static final int CLASS_MAC = 1;
    public static final int MAC_TABLE_SET = 0;
    public static final int MAC_ADDR_SET = 1;

    public static final int CLASS_VLAN = 2;
    public static final int CLASS_ANNOUNCE = 3;
    public static final int ANNOUNCE_ACK = 0;
    public static final int CLASS_MQ = 4;
    public static final int MQ_VQ_PAIRS_SET = 0;
    public static final int CLASS_GUEST_OFFLOADS = 5;

    /** The most command data Ferry reads (a full MAC table is 8 + 64 x 6 bytes). */
    public static final int MAX_DATA = 1024;

    private NetControl() {
    }

    /** What a control queue serves: one request's answer. */
    @FunctionalInterface
    public interface Commands {
        /**
         * Answers the request of class {@code cls} and command {@code cmd}; {@code data} stands at
         * its command data. Returns {@link #OK} or {@link #ERR}.
         */
        int answer(int cls, int cmd, ChainReader data, long features);
    }

    /**
     * Serves every available request on control queue {@code index}: reads class and command,
     * lets {@code commands} answer, writes the ack byte, returns the chain and tells
     * {@code answered} the ack. A request without class and command or without room for the ack
     * is a protocol error (NEEDS_RESET, nothing more is served). The chains served are published
     * with one interrupt. A {@link dev.ferry.virtio.queue.VirtqueueError} from the ring goes to
     * the caller. Loop thread only.
     */
    public static void serve(VirtioContext ctx, int index, Commands commands, IntConsumer answered) {
        SplitVirtqueue vq = ctx.queue(index);
        if (vq == null) {
            return;
        }
        int n = 0;
        DescriptorChain c;
        while ((c = vq.pop()) != null) {
            if (c.readableBytes() < 2 || c.writableBytes() < 1) {
                ctx.deviceError("virtio-net ctrl missing headers: chain head " + c.head() + " has "
                        + c.readableBytes() + " device-readable and " + c.writableBytes()
                        + " device-writable bytes (class, command and ack need 2 and 1)");
                return;
            }
            ChainReader r = c.reader();
            int cls = r.readU8();
            int cmd = r.readU8();
            int ack = commands.answer(cls, cmd, r, ctx.features());
            answered.accept(ack);
            c.writer().writeU8(ack);
            vq.push(c, 1);
            n++;
        }
        if (n > 0) {
            vq.publish();
            ctx.notifyQueue(index);
        }
    }
}
