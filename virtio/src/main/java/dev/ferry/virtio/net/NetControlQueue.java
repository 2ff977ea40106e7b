package dev.ferry.virtio.net;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.ChainReader;

import java.util.Arrays;
import java.util.function.IntConsumer;

/**
 * virtio-net's control queue ({@link NetControl}): reads each request, applies it to the RX
 * filter or the device, writes the ack byte and returns the chain. A request without class and
 * command or without room for the ack is a protocol error (NEEDS_RESET); one the device does not
 * serve is answered ERR. Shared by the built-in {@link VirtioNet} and the vhost-user-net
 * front-end, which keeps the control queue itself. Loop thread only.
 */
public final class NetControlQueue {
    /** What a command changes outside the filter. */
    public interface Device {
        void setMac(byte[] mac);

        /** VIRTIO_NET_CTRL_ANNOUNCE_ACK: true when an announce was awaited (and is now cleared). */
        boolean ackAnnounce();

        /**
         * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET with {@code pairs} (MQ negotiated, the data well formed):
         * {@link NetControl#OK} or {@link NetControl#ERR}; the device checks the range. A device
         * without MQ answers ERR.
         */
        default int setQueuePairs(int pairs) {
            return NetControl.ERR;
        }
    }

    private final RxFilter filter;
    private final Device device;
    private final IntConsumer answered;
    private final byte[] data = new byte[NetControl.MAX_DATA];

    NetControlQueue(RxFilter filter, Device device, NetStats stats) {
        this(filter, device, ack -> {
            stats.ctrlCommands.incrementAndGet();
            if (ack != NetControl.OK) {
                stats.ctrlErrors.incrementAndGet();
            }
        });
    }

    /** {@code answered} is told every ack written (counters). */
    public NetControlQueue(RxFilter filter, Device device, IntConsumer answered) {
        this.filter = filter;
        this.device = device;
        this.answered = answered;
    }

    /**
     * Serves every available request on queue {@code index} ({@link NetControl#serve}); a
     * {@link dev.ferry.virtio.queue.VirtqueueError} from the ring goes to the caller.
     */
    public void serve(VirtioContext ctx, int index) {
        NetControl.serve(ctx, index, this::command, answered);
    }

    private int command(int cls, int cmd, ChainReader r, long f) {
        long dataLen = r.remaining();
        if (dataLen > NetControl.MAX_DATA) {
            return NetControl.ERR;
        }
        int len = (int) dataLen;
        r.readFully(data, 0, len);
        return switch (cls) {
            case NetControl.CLASS_RX -> Virtio.has(f, VirtioNet.F_CTRL_RX) ? rxMode(cmd, len) : NetControl.ERR;
            case NetControl.CLASS_MAC -> macCommand(cmd, len, f);
            case NetControl.CLASS_ANNOUNCE -> cmd == NetControl.ANNOUNCE_ACK && len == 0
                    && Virtio.has(f, VirtioNet.F_GUEST_ANNOUNCE) && device.ackAnnounce() ? NetControl.OK : NetControl.ERR;
            case NetControl.CLASS_MQ -> cmd == NetControl.MQ_VQ_PAIRS_SET && len == 2 && Virtio.has(f, VirtioNet.F_MQ)
                    ? device.setQueuePairs((data[0] & 0xff) | (data[1] & 0xff) << 8) : NetControl.ERR;
            default -> NetControl.ERR;
        };
    }

    private int rxMode(int cmd, int len) {
        if (len != 1) {
            return NetControl.ERR;
        }
        boolean on = data[0] != 0;
        switch (cmd) {
            case NetControl.RX_PROMISC -> filter.promisc = on;
            case NetControl.RX_ALLMULTI -> filter.allmulti = on;
            default -> {
                return NetControl.ERR; // ALLUNI..NOBCAST need CTRL_RX_EXTRA, not offered
            }
        }
        return NetControl.OK;
    }

    private int macCommand(int cmd, int len, long f) {
        if (cmd == NetControl.MAC_ADDR_SET) {
            if (!Virtio.has(f, VirtioNet.F_CTRL_MAC_ADDR) || len != 6) {
                return NetControl.ERR;
            }
            device.setMac(Arrays.copyOf(data, 6));
            return NetControl.OK;
        }
        if (cmd != NetControl.MAC_TABLE_SET || !Virtio.has(f, VirtioNet.F_CTRL_RX) || len < 8) {
            return NetControl.ERR;
        }
        // le32 n | n macs | le32 m | m macs, exactly the data's length
        long uni = le32(0);
        if (uni > (len - 8) / 6) {
            return NetControl.ERR;
        }
        int at = 4 + (int) uni * 6;
        long multi = le32(at);
        if (at + 4 + multi * 6 != len) {
            return NetControl.ERR;
        }
        byte[] table = new byte[RxFilter.TABLE_ENTRIES * 6];
        int inUse = 0;
        boolean uniOverflow = uni > RxFilter.TABLE_ENTRIES;
        if (!uniOverflow) {
            System.arraycopy(data, 4, table, 0, (int) uni * 6);
            inUse = (int) uni;
        }
        int firstMulti = inUse;
        boolean multiOverflow = inUse + multi > RxFilter.TABLE_ENTRIES;
        if (!multiOverflow) {
            System.arraycopy(data, at + 4, table, inUse * 6, (int) multi * 6);
            inUse += (int) multi;
        }
        filter.table = table;
        filter.inUse = inUse;
        filter.firstMulti = firstMulti;
        filter.uniOverflow = uniOverflow;
        filter.multiOverflow = multiOverflow;
        return NetControl.OK;
    }

    private long le32(int at) {
        return (data[at] & 0xffL) | (data[at + 1] & 0xffL) << 8 | (data[at + 2] & 0xffL) << 16
                | (data[at + 3] & 0xffL) << 24;
    }
}
