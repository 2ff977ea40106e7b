package dev.ferry.virtio.guest;

import dev.ferry.core.cpu.soft.SoftGuestProgram;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.net.NetConfig;
import dev.ferry.virtio.net.NetControl;
import dev.ferry.virtio.net.NetHeader;
import dev.ferry.virtio.net.VirtioNet;

import java.util.concurrent.TimeUnit;

import static dev.ferry.virtio.guest.NetDriverArea.CTRL_RING;
import static dev.ferry.virtio.guest.NetDriverArea.QUEUE_SIZE;
import static dev.ferry.virtio.guest.NetDriverArea.RX_RING;
import static dev.ferry.virtio.guest.NetDriverArea.TX_RING;

/**
 * Ferry's guest virtio-net driver for the soft engine: guest code that drives a virtio-mmio NIC
 * only as a guest can — registers on the MMIO bus, rings and buffers in guest RAM, interrupts
 * from the soft interrupt controller.
 *
 * <p>It sends sequence-numbered DATA frames ({@link NetTraffic}) to the traffic peer, keeping at
 * most {@code window} unanswered, and checks the peer's REPLY frames: their sequence numbers must
 * rise by one; a jump is a gap (frames lost, recorded with its range), a repeat or step back a
 * duplicate or reordering; the echo must name a frame it sent. When the device sets
 * {@code VIRTIO_NET_S_ANNOUNCE} (GUEST_ANNOUNCE, after a migration) it sends a gratuitous ARP and
 * acks on the control queue. At boot it turns promiscuous mode off (CTRL_RX), so the device's
 * filter passes only its MAC and broadcast.
 *
 * <p>Everything it knows lives in its {@link NetDriverArea}, so after a migration the same program
 * on the destination continues the same sequence. When replies stop coming (the peer's frames to
 * a VM that was down are gone), it waits a little and then counts the unanswered frames as
 * answered, so traffic resumes.
 *
 * <p>Runs on its own soft "vCPU" thread; one slice reaps completions, sends, and with nothing to
 * do waits up to 1 ms for the device's interrupt.
 */
public final class SoftNetDriver implements SoftGuestProgram {
    private static final long WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    /** Idle slices without a reply before unanswered frames count as answered. */
    private static final int STALL_SLICES = 20;
    private final NetDriverArea area;
    private final DeviceMemory mem;
    private final GuestMmio port;
    private final SoftInterruptController irqchip;
    private final int irqMask;
    private final int window;
    private final int frameLength;
    private final byte[] frame;
    private boolean booted;
    private int stalled;
    /** S_ANNOUNCE seen while a control request was in flight: announce once it completes. */
    private boolean announceWanted;
    /** Features this driver does not take even when offered ({@link #without}). */
    private long declined;

    /**
     * @param regs        the device's virtio-mmio register window
     * @param gsi         its interrupt line
     * @param window      DATA frames in flight without a reply at most (1..QUEUE_SIZE)
     * @param frameLength Ethernet frame length of DATA frames ({@link NetTraffic#MIN_FRAME}..1514)
     */
    public SoftNetDriver(DeviceMemory memory, long areaBase, IoBus mmio, long regs, SoftInterruptController irqchip,
                         int gsi, int window, int frameLength) {
        if (window < 1 || window > QUEUE_SIZE) {
            throw new IllegalArgumentException("window " + window + " outside 1.." + QUEUE_SIZE);
        }
        if (frameLength < NetTraffic.MIN_FRAME || frameLength > 1514) {
            throw new IllegalArgumentException("frame length " + frameLength + " outside " + NetTraffic.MIN_FRAME
                    + "..1514");
        }
        this.area = new NetDriverArea(memory, areaBase);
        this.mem = memory;
        this.port = new GuestMmio(memory, mmio, regs);
        this.irqchip = irqchip;
        this.irqMask = 1 << gsi;
        this.window = window;
        this.frameLength = frameLength;
        this.frame = new byte[frameLength];
    }

    public NetDriverArea area() {
        return area;
    }

    /**
     * A driver that does not take {@code features} even when the device offers them (a guest
     * without GUEST_ANNOUNCE: after a migration the host must announce it). Before the VM runs.
     */
    public SoftNetDriver without(long features) {
        declined |= features;
        return this;
    }

    @Override
    public void runSlice() throws InterruptedException {
        if (!booted) {
            boot();
            booted = true;
        }
        if (area.get(NetDriverArea.R_ERRORS) != 0) {
            Thread.sleep(2); // a broken device or protocol: stop, keep the evidence
            return;
        }
        int work = reapTx() + reapRx() + reapCtrl();
        if (announceWanted && area.get(NetDriverArea.R_CTRL_PENDING) == NetDriverArea.CTRL_NONE) {
            announceWanted = false;
            if ((port.config(NetConfig.STATUS_OFFSET, 2) & NetConfig.S_ANNOUNCE) != 0) {
                announce();
            }
        }
        int sent = sendData();
        boolean idle = work == 0 && sent == 0;
        int pending = idle ? irqchip.await(irqMask, WAIT_NANOS, TimeUnit.NANOSECONDS) : irqchip.pendingMask() & irqMask;
        if (pending != 0) {
            interrupt();
        } else if (idle && ++stalled > STALL_SLICES) {
            // No reply for a while: the frames in flight were answered to where this VM no longer is.
            area.set(NetDriverArea.R_ECHO_LAST, area.get(NetDriverArea.R_NEXT_SEQ) - 1);
            stalled = 0;
        }
    }

    private void interrupt() {
        int isr = port.ackInterrupt();
        area.add(NetDriverArea.R_INTERRUPTS, 1);
        if ((isr & Virtio.ISR_CONFIG) != 0) {
            if (port.needsReset()) {
                error(NetDriverArea.ERR_DEVICE);
                return;
            }
            int status = (int) port.config(NetConfig.STATUS_OFFSET, 2);
            if ((status & NetConfig.S_ANNOUNCE) != 0) {
                if (area.get(NetDriverArea.R_CTRL_PENDING) == NetDriverArea.CTRL_NONE) {
                    announce();
                } else {
                    announceWanted = true;
                }
            }
        }
    }

    // ---- boot ----

    private void boot() {
        if (area.get(NetDriverArea.R_MAGIC) == NetDriverArea.MAGIC) {
            return; // resumed: a migration destination, or the same VM after a pause
        }
        long offered = port.begin();
        long want = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(VirtioNet.F_MAC) | Virtio.bit(VirtioNet.F_MRG_RXBUF)
                | Virtio.bit(VirtioNet.F_STATUS) | Virtio.bit(VirtioNet.F_CTRL_VQ) | Virtio.bit(VirtioNet.F_CTRL_RX)
                | Virtio.bit(VirtioNet.F_GUEST_ANNOUNCE);
        long accept = offered & want & ~declined;
        int st = port.acceptFeatures(accept);
        mem.fill(area.base(), NetDriverArea.SIZE, (byte) 0);
        for (int q = 0; q < 3; q++) {
            int ring = q == 0 ? RX_RING : q == 1 ? TX_RING : CTRL_RING;
            port.queue(q, QUEUE_SIZE, area.desc(ring, 0), area.avail(ring), area.used(ring));
        }
        byte[] mac = port.mac(NetConfig.MAC_OFFSET);
        for (int s = 0; s < QUEUE_SIZE; s++) {
            descriptor(RX_RING, s, area.rxBuffer(s), NetDriverArea.BUFFER, 2, 0);
            descriptor(TX_RING, s, area.txBuffer(s), 0, 0, 0);
            mem.writeU16(area.avail(RX_RING) + 4 + 2L * s, s);
        }
        mem.storeU16Release(area.avail(RX_RING) + 2, QUEUE_SIZE);
        area.set(NetDriverArea.R_RX_AVAIL, QUEUE_SIZE);
        area.set(NetDriverArea.R_FEATURES, accept);
        area.set(NetDriverArea.R_MAC, NetTraffic.macToLong(mac));
        area.set(NetDriverArea.R_PEER_MAC, NetTraffic.macToLong(NetTraffic.PEER_MAC));
        area.set(NetDriverArea.R_NEXT_SEQ, 1);
        area.set(NetDriverArea.R_WINDOW, window);
        area.set(NetDriverArea.R_FRAME_LEN, frameLength);
        area.set(NetDriverArea.R_MAGIC, NetDriverArea.MAGIC);
        port.driverOk(st);
        if (Virtio.has(accept, VirtioNet.F_CTRL_RX)) {
            control(NetControl.CLASS_RX, NetControl.RX_PROMISC, new byte[] {0}, NetDriverArea.CTRL_OTHER);
        }
    }

    private void descriptor(int ring, int i, long addr, int len, int flags, int next) {
        port.descriptor(area.desc(ring, i), addr, len, flags, next);
    }

    private void kick(int ring, int queue) {
        port.kick(area.used(ring), queue);
    }

    // ---- TX ----

    private int sendData() {
        long next = area.get(NetDriverArea.R_NEXT_SEQ);
        long echo = area.get(NetDriverArea.R_ECHO_LAST);
        long avail = area.get(NetDriverArea.R_TX_AVAIL);
        long lastUsed = area.get(NetDriverArea.R_TX_LAST_USED);
        int n = 0;
        while (next - 1 - echo < window && avail - lastUsed < QUEUE_SIZE) {
            fillData(next);
            post(avail, frame, frameLength);
            avail++;
            next++;
            n++;
        }
        if (n > 0) {
            area.set(NetDriverArea.R_NEXT_SEQ, next);
            publishTx(avail, n);
        }
        return n;
    }

    private void fillData(long seq) {
        long mac = area.get(NetDriverArea.R_MAC);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(frame);
        b.put(0, NetTraffic.PEER_MAC);
        b.put(6, NetTraffic.longToMac(mac));
        b.putShort(12, (short) NetTraffic.ETHERTYPE);
        b.putInt(14, NetTraffic.MAGIC);
        b.put(18, (byte) NetTraffic.DATA);
        b.putLong(20, seq);
        b.putLong(28, 0);
    }

    /** Writes header and frame into the TX slot of avail index {@code avail}. */
    private void post(long avail, byte[] f, int length) {
        int s = (int) (avail % QUEUE_SIZE);
        long buf = area.txBuffer(s);
        mem.fill(buf, NetHeader.SIZE, (byte) 0);
        mem.write(buf + NetHeader.SIZE, f, 0, length);
        mem.writeU32(area.desc(TX_RING, s) + 8, NetHeader.SIZE + length);
        mem.writeU16(area.avail(TX_RING) + 4 + 2L * s, s);
    }

    private void publishTx(long avail, int n) {
        mem.storeU16Release(area.avail(TX_RING) + 2, (int) avail);
        area.set(NetDriverArea.R_TX_AVAIL, avail);
        area.add(NetDriverArea.R_TX_SENT, n);
        kick(TX_RING, VirtioNet.TX);
    }

    private int reapTx() {
        long lastUsed = area.get(NetDriverArea.R_TX_LAST_USED);
        int usedIdx = mem.loadU16Acquire(area.used(TX_RING) + 2);
        int pending = (usedIdx - (int) lastUsed) & 0xffff;
        long inFlight = area.get(NetDriverArea.R_TX_AVAIL) - lastUsed;
        if (pending > inFlight) {
            error(NetDriverArea.ERR_USED_AHEAD);
            return 0;
        }
        for (int k = 0; k < pending; k++) {
            int id = mem.readU32(area.used(TX_RING) + 4 + 8L * ((lastUsed + k) % QUEUE_SIZE));
            if (id != (int) ((lastUsed + k) % QUEUE_SIZE)) {
                error(NetDriverArea.ERR_BAD_ID);
                return k;
            }
        }
        area.set(NetDriverArea.R_TX_LAST_USED, lastUsed + pending);
        area.add(NetDriverArea.R_TX_COMPLETED, pending);
        return pending;
    }

    // ---- RX ----

    private int reapRx() {
        long lastUsed = area.get(NetDriverArea.R_RX_LAST_USED);
        int usedIdx = mem.loadU16Acquire(area.used(RX_RING) + 2);
        int pending = (usedIdx - (int) lastUsed) & 0xffff;
        if (pending > QUEUE_SIZE) {
            error(NetDriverArea.ERR_USED_AHEAD);
            return 0;
        }
        if (pending == 0) {
            return 0;
        }
        long avail = area.get(NetDriverArea.R_RX_AVAIL);
        for (int k = 0; k < pending; k++) {
            long e = area.used(RX_RING) + 4 + 8L * ((lastUsed + k) % QUEUE_SIZE);
            int id = mem.readU32(e);
            int len = mem.readU32(e + 4);
            if (id < 0 || id >= QUEUE_SIZE) {
                error(NetDriverArea.ERR_BAD_ID);
                return k;
            }
            if (len < NetHeader.SIZE || len > NetDriverArea.BUFFER) {
                error(NetDriverArea.ERR_RX_LENGTH);
                return k;
            }
            frame(area.rxBuffer(id), len - NetHeader.SIZE);
            mem.writeU16(area.avail(RX_RING) + 4 + 2L * (avail % QUEUE_SIZE), id); // the buffer goes back
            avail++;
        }
        area.set(NetDriverArea.R_RX_LAST_USED, lastUsed + pending);
        area.add(NetDriverArea.R_RX_FRAMES, pending);
        mem.storeU16Release(area.avail(RX_RING) + 2, (int) avail);
        area.set(NetDriverArea.R_RX_AVAIL, avail);
        kick(RX_RING, VirtioNet.RX);
        stalled = 0;
        return pending;
    }

    private void frame(long buf, int length) {
        long f = buf + NetHeader.SIZE;
        if (length < NetTraffic.MIN_FRAME || (mem.readU8(f + 12) << 8 | mem.readU8(f + 13)) != NetTraffic.ETHERTYPE
                || Integer.reverseBytes(mem.readU32(f + 14)) != NetTraffic.MAGIC || mem.readU8(f + 18) != NetTraffic.REPLY) {
            area.add(NetDriverArea.R_RX_OTHER, 1);
            return;
        }
        long seq = Long.reverseBytes(mem.readU64(f + 20));
        long echo = Long.reverseBytes(mem.readU64(f + 28));
        long last = area.get(NetDriverArea.R_LAST_PEER_SEQ);
        if (seq <= last) {
            area.add(NetDriverArea.R_PEER_DUPS, 1);
        } else {
            if (seq != last + 1) {
                area.recordGap(last + 1, seq);
                area.add(NetDriverArea.R_PEER_LOST, seq - last - 1);
            }
            area.set(NetDriverArea.R_LAST_PEER_SEQ, seq);
        }
        area.add(NetDriverArea.R_PEER_FRAMES, 1);
        if (echo >= area.get(NetDriverArea.R_NEXT_SEQ)) {
            area.add(NetDriverArea.R_ECHO_BAD, 1);
            error(NetDriverArea.ERR_ECHO_AHEAD);
        } else if (echo > area.get(NetDriverArea.R_ECHO_LAST)) {
            area.set(NetDriverArea.R_ECHO_LAST, echo);
        }
    }

    // ---- control queue and announce ----

    private void announce() {
        area.add(NetDriverArea.R_ANNOUNCES_SEEN, 1);
        long avail = area.get(NetDriverArea.R_TX_AVAIL);
        if (avail - area.get(NetDriverArea.R_TX_LAST_USED) < QUEUE_SIZE) {
            byte[] g = NetTraffic.garp(NetTraffic.longToMac(area.get(NetDriverArea.R_MAC)));
            post(avail, g, g.length);
            publishTx(avail + 1, 1);
            area.add(NetDriverArea.R_GARPS_SENT, 1);
        }
        control(NetControl.CLASS_ANNOUNCE, NetControl.ANNOUNCE_ACK, new byte[0], NetDriverArea.CTRL_ANNOUNCE_ACK);
    }

    /** Posts one control request (descriptors 0 and 1 of ctrl) and kicks; reaped by {@link #reapCtrl}. */
    private void control(int cls, int cmd, byte[] data, int what) {
        long req = area.base() + NetDriverArea.CTRL_REQ;
        long ack = area.base() + NetDriverArea.CTRL_ACK;
        mem.writeU8(req, cls);
        mem.writeU8(req + 1, cmd);
        mem.write(req + 2, data, 0, data.length);
        mem.writeU8(ack, 0xff);
        descriptor(CTRL_RING, 0, req, 2 + data.length, 1, 1);
        descriptor(CTRL_RING, 1, ack, 1, 2, 0);
        long avail = area.get(NetDriverArea.R_CTRL_AVAIL);
        mem.writeU16(area.avail(CTRL_RING) + 4 + 2L * (avail % QUEUE_SIZE), 0);
        area.set(NetDriverArea.R_CTRL_PENDING, what);
        mem.storeU16Release(area.avail(CTRL_RING) + 2, (int) (avail + 1));
        area.set(NetDriverArea.R_CTRL_AVAIL, avail + 1);
        kick(CTRL_RING, VirtioNet.CTRL);
    }

    private int reapCtrl() {
        long lastUsed = area.get(NetDriverArea.R_CTRL_LAST_USED);
        int usedIdx = mem.loadU16Acquire(area.used(CTRL_RING) + 2);
        int pending = (usedIdx - (int) lastUsed) & 0xffff;
        if (pending == 0) {
            return 0;
        }
        if (pending != 1 || area.get(NetDriverArea.R_CTRL_PENDING) == NetDriverArea.CTRL_NONE) {
            error(NetDriverArea.ERR_USED_AHEAD);
            return 0;
        }
        int ack = mem.readU8(area.base() + NetDriverArea.CTRL_ACK);
        if (ack != NetControl.OK) {
            area.add(NetDriverArea.R_CTRL_ERRORS, 1);
        } else if (area.get(NetDriverArea.R_CTRL_PENDING) == NetDriverArea.CTRL_ANNOUNCE_ACK) {
            area.add(NetDriverArea.R_ANNOUNCE_ACKS, 1);
        }
        area.set(NetDriverArea.R_CTRL_PENDING, NetDriverArea.CTRL_NONE);
        area.set(NetDriverArea.R_CTRL_LAST_USED, lastUsed + 1);
        return 1;
    }

    private void error(long code) {
        if (area.get(NetDriverArea.R_FIRST_ERROR) == 0) {
            area.set(NetDriverArea.R_FIRST_ERROR, code);
        }
        area.add(NetDriverArea.R_ERRORS, 1);
    }
}
