package dev.ferry.virtio.guest;

import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;

/**
 * The virtio-mmio side of Ferry's soft guest drivers (net, multiqueue net, block, balloon), done
 * as a guest does it — register accesses on the MMIO bus and guest RAM only: the boot handshake
 * (virtio 1.2, 3.1.1), queue setup (4.2.3.2), descriptors, doorbells and the interrupt
 * acknowledge. Where the rings lie is the driver's; this writes the addresses it is given.
 */
final class GuestMmio {
    static final int CONFIG = 0x100;
    private final DeviceMemory mem;
    private final IoBus mmio;
    private final long regs;

    GuestMmio(DeviceMemory mem, IoBus mmio, long regs) {
        this.mem = mem;
        this.mmio = mmio;
        this.regs = regs;
    }

    /** Throws unless a virtio-mmio v2 device with {@code deviceId} ({@code what}, for the message) is there. */
    void expect(int deviceId, String what) {
        if (mmio.read(regs, 4) != 0x74726976L || mmio.read(regs + 4, 4) != 2 || mmio.read(regs + 8, 4) != deviceId) {
            throw new IllegalStateException("no virtio-mmio v2 " + what + " at 0x" + Long.toHexString(regs));
        }
    }

    /**
     * Checks for a virtio-mmio v2 network device, resets it, sets ACKNOWLEDGE and DRIVER, and
     * returns the 64 feature bits it offers.
     */
    long begin() {
        expect(Virtio.ID_NET, "network device");
        return reset();
    }

    /** Resets the device, sets ACKNOWLEDGE and DRIVER, and returns the 64 feature bits it offers. */
    long reset() {
        mmio.write(regs + 0x070, 4, 0);
        mmio.write(regs + 0x070, 4, Virtio.STATUS_ACKNOWLEDGE);
        mmio.write(regs + 0x070, 4, Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER);
        long offered = 0;
        for (int sel = 0; sel < 2; sel++) {
            mmio.write(regs + 0x014, 4, sel);
            offered |= (mmio.read(regs + 0x010, 4) & 0xffffffffL) << (32 * sel);
        }
        return offered;
    }

    /** Writes {@code accept} and FEATURES_OK; false when the device refuses them (FEATURES_OK does not stick). */
    boolean offerFeatures(long accept) {
        for (int sel = 0; sel < 2; sel++) {
            mmio.write(regs + 0x024, 4, sel);
            mmio.write(regs + 0x020, 4, accept >>> (32 * sel) & 0xffffffffL);
        }
        mmio.write(regs + 0x070, 4, FEATURES_OK_STATUS);
        return (mmio.read(regs + 0x070, 4) & Virtio.STATUS_FEATURES_OK) != 0;
    }

    /** ACKNOWLEDGE, DRIVER and FEATURES_OK: the status once features are agreed. */
    static final int FEATURES_OK_STATUS = Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_FEATURES_OK;

    /** As {@link #offerFeatures}; throws naming {@code what} when refused. Returns the status written. */
    int acceptFeatures(long accept, String what) {
        if (!offerFeatures(accept)) {
            throw new IllegalStateException("the " + what + " refused features 0x" + Long.toHexString(accept));
        }
        return FEATURES_OK_STATUS;
    }

    /** For a network device: {@link #acceptFeatures(long, String)} naming the NIC. */
    int acceptFeatures(long accept) {
        return acceptFeatures(accept, "NIC");
    }

    /** Selects queue {@code q}; returns the most entries the device allows in it. */
    long queueMax(int q) {
        mmio.write(regs + 0x030, 4, q);
        return mmio.read(regs + 0x034, 4);
    }

    /** The selected queue gets {@code size} entries on the ring areas at {@code desc}, {@code avail}, {@code used}; ready. */
    void queueSetup(int size, long desc, long avail, long used) {
        mmio.write(regs + 0x038, 4, size);
        address(0x080, desc);
        address(0x090, avail);
        address(0x0a0, used);
        mmio.write(regs + 0x044, 4, 1);
    }

    /** Device queue {@code q} with {@code size} entries on the ring areas at {@code desc}, {@code avail}, {@code used}; ready. */
    void queue(int q, int size, long desc, long avail, long used) {
        if (queueMax(q) < size) {
            throw new IllegalStateException("the NIC's queue " + q + " holds fewer than " + size + " entries");
        }
        queueSetup(size, desc, avail, used);
    }

    private void address(int reg, long gpa) {
        mmio.write(regs + reg, 4, gpa & 0xffffffffL);
        mmio.write(regs + reg + 4, 4, gpa >>> 32);
    }

    /** Sets DRIVER_OK on top of {@code status}. */
    void driverOk(int status) {
        mmio.write(regs + 0x070, 4, status | Virtio.STATUS_DRIVER_OK);
    }

    /** The device's MAC (config bytes 0..5). */
    byte[] mac(int offset) {
        byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) {
            mac[i] = (byte) mmio.read(regs + CONFIG + offset + i, 1);
        }
        return mac;
    }

    /** {@code size} bytes of config space at {@code offset}. */
    long config(int offset, int size) {
        return mmio.read(regs + CONFIG + offset, size);
    }

    /** Reads the interrupt status and acknowledges it; returns it. */
    int ackInterrupt() {
        int isr = (int) mmio.read(regs + 0x060, 4);
        mmio.write(regs + 0x064, 4, isr);
        return isr;
    }

    boolean needsReset() {
        return (mmio.read(regs + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) != 0;
    }

    /** Writes the descriptor at {@code d}. */
    void descriptor(long d, long addr, int len, int flags, int next) {
        mem.writeU64(d, addr);
        mem.writeU32(d + 8, len);
        mem.writeU16(d + 12, flags);
        mem.writeU16(d + 14, next);
    }

    /** Notifies {@code queue}, whose used ring is at {@code used}, unless the device set VRING_USED_F_NO_NOTIFY. */
    void kick(long used, int queue) {
        mem.fullFence();
        if ((mem.readU16(used) & 1) == 0) { // VRING_USED_F_NO_NOTIFY
            mmio.write(regs + 0x050, 4, queue);
        }
    }
}
