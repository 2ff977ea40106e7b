package dev.ferry.vfio.emulated;

import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static dev.ferry.vfio.emulated.NicRegisters.*;

/**
 * A stand-in for the guest's VF driver, living in the VMM: it programs an emulated NIC VF only as
 * a guest would — 4- and 8-byte accesses on the machine's MMIO bus at the VF's BAR0, and guest
 * memory for rings, buffers and mailbox messages — so that what it sets up travels with guest RAM
 * and the device's migrated state, not through any side channel. The VMM uses it to bring a VF
 * to life in a demo or a vendor check; tests use it to make a VF busy.
 *
 * <p>It remembers what it programmed ({@link #programmed()}), which is what {@link NicVerifier}
 * judges delivered frames by. One thread at a time (a guest's driver runs on one vCPU here).
 */
public final class NicDriver {
    /**
     * Where the driver keeps its data in guest memory, from {@code base} (4 KiB aligned): the RX
     * ring, the TX ring, a mailbox page, the RX buffers, the TX buffers.
     */
    public record Layout(long base, int rxRing, int txRing, int bufferSize) {
        private static final long PAGE = 4096;

        public Layout {
            if (base < 0 || base % PAGE != 0) {
                throw new IllegalArgumentException("driver area at 0x" + Long.toHexString(base) + " is not page aligned");
            }
            if (!validRingSize(rxRing) || !validRingSize(txRing)) {
                throw new IllegalArgumentException("ring sizes " + rxRing + "/" + txRing + " must be powers of two in "
                        + MIN_RING + ".." + MAX_RING);
            }
            if (bufferSize < MAX_FRAME || bufferSize > MAX_BUF_SIZE) {
                throw new IllegalArgumentException("buffer size " + bufferSize + " outside " + MAX_FRAME + ".." + MAX_BUF_SIZE);
            }
        }

        /** 1024 RX and 64 TX descriptors with 2 KiB buffers: about 2.2 MiB from {@code base}. */
        public static Layout standard(long base) {
            return new Layout(base, 1024, 64, 2048);
        }

        private static long pages(long bytes) {
            return (bytes + PAGE - 1) / PAGE * PAGE;
        }

        public long rxRingAddress() {
            return base;
        }

        public long txRingAddress() {
            return base + pages((long) rxRing * DESC_SIZE);
        }

        public long mailboxAddress() {
            return txRingAddress() + pages((long) txRing * DESC_SIZE);
        }

        public long rxBuffer(int i) {
            return mailboxAddress() + PAGE + (long) i * bufferSize;
        }

        public long txBuffer(int i) {
            return rxBuffer(rxRing) + (long) i * bufferSize;
        }

        /** The first byte after the area. */
        public long end() {
            return pages(txBuffer(txRing));
        }
    }

    /** The VF answered a mailbox message with an error. */
    public static final class MailboxException extends IllegalStateException {
        private static final long serialVersionUID = 1L;
        private final int code;

        MailboxException(String message, int code) {
            super(message);
            this.code = code;
        }

        /** The VF's error code ({@link NicRegisters#MBX_ERR_LENGTH} ...). */
        public int code() {
            return code;
        }
    }

    private final String name;
    private final IoBus bus;
    private final long bar;
    private final GuestMemory memory;
    private final Layout layout;
    private NicFilter programmed = NicFilter.EMPTY;
    private boolean promiscuous;
    private int rxNext;
    private int txNext;

    /**
     * A driver for the VF whose BAR0 is at {@code bar} on {@code bus}, keeping its data in
     * {@code memory} as {@code layout} says.
     */
    public NicDriver(String name, IoBus bus, long bar, GuestMemory memory, Layout layout) {
        this.name = name;
        this.bus = bus;
        this.bar = bar;
        this.memory = memory;
        this.layout = layout;
        memory.regionFor(layout.base(), layout.end() - layout.base()); // the area must be RAM
    }

    public Layout layout() {
        return layout;
    }

    /** The MAC, tables and RSS key this driver programmed. */
    public NicFilter programmed() {
        return programmed;
    }

    public boolean promiscuous() {
        return promiscuous;
    }

    /** A 32-bit register. */
    public int register(int offset) {
        return (int) bus.read(bar + offset, 4);
    }

    /** A 64-bit counter ({@link NicRegisters#RX_PACKETS} ...), read as one 8-byte access. */
    public long counter(int offset) {
        return bus.read(bar + offset, 8);
    }

    private void write(int offset, int value) {
        bus.write(bar + offset, 4, value & 0xFFFF_FFFFL);
    }

    /** Checks that a NIC VF answers at the BAR. */
    public void probe() {
        int id = register(ID);
        if (id != ID_VALUE) {
            throw new IllegalStateException(name + ": no emulated NIC VF at 0x" + Long.toHexString(bar) + " (ID reads 0x"
                    + Integer.toHexString(id) + ")");
        }
    }

    /** Software reset: registers, counters and filters back to zero. */
    public void reset() {
        write(CTRL, CTRL_RESET);
        programmed = NicFilter.EMPTY;
        promiscuous = false;
        rxNext = 0;
        txNext = 0;
    }

    /** Writes both rings' descriptors into guest memory and programs the ring registers, RX fully posted. */
    public void setUpRings() {
        for (int i = 0; i < layout.rxRing(); i++) {
            long d = layout.rxRingAddress() + (long) i * DESC_SIZE;
            memory.fill(Gpa.of(d), DESC_SIZE, (byte) 0);
            memory.writeLong(Gpa.of(d), layout.rxBuffer(i));
        }
        memory.fill(Gpa.of(layout.txRingAddress()), (long) layout.txRing() * DESC_SIZE, (byte) 0);
        bus.write(bar + RX_BASE, 8, layout.rxRingAddress());
        write(RX_SIZE, layout.rxRing());
        write(RX_BUF_SIZE, layout.bufferSize());
        write(RX_TAIL, layout.rxRing() - 1);
        bus.write(bar + TX_BASE, 8, layout.txRingAddress());
        write(TX_SIZE, layout.txRing());
        rxNext = 0;
        txNext = 0;
    }

    public void setMac(long mac) {
        mailbox(MBX_SET_MAC, mac(mac), "SET_MAC " + macString(mac));
        programmed = programmed.withMac(mac);
    }

    public void addMac(long mac) {
        mailbox(MBX_ADD_MAC, mac(mac), "ADD_MAC " + macString(mac));
        programmed = programmed.withTableMac(mac);
    }

    public void removeMac(long mac) {
        mailbox(MBX_DEL_MAC, mac(mac), "DEL_MAC " + macString(mac));
        programmed = programmed.withoutTableMac(mac);
    }

    public void addVlan(int vlan) {
        mailbox(MBX_ADD_VLAN, vlan(vlan), "ADD_VLAN " + vlan);
        programmed = programmed.withVlan(vlan);
    }

    public void removeVlan(int vlan) {
        mailbox(MBX_DEL_VLAN, vlan(vlan), "DEL_VLAN " + vlan);
        programmed = programmed.withoutVlan(vlan);
    }

    public void setRssKey(byte[] key) {
        mailbox(MBX_SET_RSS_KEY, key, "SET_RSS_KEY");
        programmed = programmed.withRssKey(key);
    }

    public void clearFilters() {
        mailbox(MBX_CLEAR_FILTERS, new byte[0], "CLEAR_FILTERS");
        programmed = programmed.withoutTables();
    }

    private static byte[] mac(long mac) {
        byte[] b = new byte[6];
        for (int i = 0; i < 6; i++) {
            b[i] = (byte) (mac >>> (8 * (5 - i)));
        }
        return b;
    }

    private static byte[] vlan(int vlan) {
        return new byte[] {(byte) vlan, (byte) (vlan >>> 8)};
    }

    /** Sends one mailbox message: message into guest memory, address, doorbell, status. */
    public void mailbox(int opcode, byte[] args, String what) {
        int before = register(MBX_STATUS) >>> 16;
        ByteBuffer msg = ByteBuffer.allocate(8 + args.length).order(ByteOrder.LITTLE_ENDIAN);
        msg.putInt(opcode).putInt(args.length).put(args);
        memory.write(Gpa.of(layout.mailboxAddress()), msg.array(), 0, msg.capacity());
        bus.write(bar + MBX_ADDR, 8, layout.mailboxAddress());
        write(MBX_DOORBELL, msg.capacity());
        int status = register(MBX_STATUS);
        if (status >>> 16 != ((before + 1) & 0xFFFF)) {
            throw new IllegalStateException(name + ": mailbox " + what + " got no answer (is the VF stopped?)");
        }
        if ((status & 0xFF) != MBX_DONE) {
            int code = status >>> 8 & 0xFF;
            throw new MailboxException(name + ": mailbox " + what + " failed: " + mailboxError(code), code);
        }
    }

    /**
     * Enables RX; with {@code autoRecycle} the VF reuses the ring's buffers so DMA keeps flowing
     * without this driver consuming frames.
     */
    public void enableRx(boolean autoRecycle, boolean promisc) {
        int ctrl = register(CTRL) | CTRL_RX_EN;
        ctrl = autoRecycle ? ctrl | CTRL_AUTO_RECYCLE : ctrl & ~CTRL_AUTO_RECYCLE;
        ctrl = promisc ? ctrl | CTRL_PROMISC : ctrl & ~CTRL_PROMISC;
        write(CTRL, ctrl);
        if ((register(CTRL) & CTRL_RX_EN) == 0) {
            throw new IllegalStateException(name + ": the VF refused to enable RX (STATUS 0x"
                    + Integer.toHexString(register(STATUS)) + ")");
        }
        promiscuous = promisc;
    }

    public void enableTx(boolean loopback) {
        int ctrl = register(CTRL) | CTRL_TX_EN;
        write(CTRL, loopback ? ctrl | CTRL_LOOPBACK : ctrl & ~CTRL_LOOPBACK);
        if ((register(CTRL) & CTRL_TX_EN) == 0) {
            throw new IllegalStateException(name + ": the VF refused to enable TX");
        }
    }

    public void disable() {
        write(CTRL, 0);
    }

    /**
     * Consumes the frames the VF completed since the last call (drop mode): clears their
     * descriptors and posts them again. Returns how many.
     */
    public int recycle() {
        int n = 0;
        int size = layout.rxRing();
        while (true) {
            long d = layout.rxRingAddress() + (long) rxNext * DESC_SIZE;
            int status = memory.readInt(Gpa.of(d + 12));
            if ((status & DESC_DD) == 0 || n == size) {
                break;
            }
            memory.writeInt(Gpa.of(d + 12), 0);
            rxNext = (rxNext + 1) % size;
            n++;
        }
        if (n > 0) {
            write(RX_TAIL, (rxNext + size - 1) % size);
        }
        return n;
    }

    /** Queues one frame for transmission and rings the TX doorbell. */
    public void send(byte[] frame) {
        int size = layout.txRing();
        if ((txNext + 1) % size == register(TX_HEAD)) {
            throw new IllegalStateException(name + ": TX ring full");
        }
        long d = layout.txRingAddress() + (long) txNext * DESC_SIZE;
        memory.write(Gpa.of(layout.txBuffer(txNext)), frame, 0, frame.length);
        memory.writeLong(Gpa.of(d), layout.txBuffer(txNext));
        memory.writeInt(Gpa.of(d + 8), frame.length);
        memory.writeInt(Gpa.of(d + 12), 0);
        txNext = (txNext + 1) % size;
        write(TX_TAIL, txNext);
    }

    /**
     * The usual bring-up: reset, rings, MAC {@code station(0)}, stations 1 and 2 and VLAN 100 in
     * the tables, an RSS key, RX in auto-recycle mode.
     */
    public void bringUp() {
        probe();
        reset();
        setUpRings();
        setMac(NicWire.station(0));
        addMac(NicWire.station(1));
        addMac(NicWire.station(2));
        addVlan(100);
        byte[] key = new byte[RSS_KEY_SIZE];
        for (int i = 0; i < key.length; i++) {
            key[i] = (byte) (0x6D + 17 * i);
        }
        setRssKey(key);
        enableRx(true, false);
    }
}
