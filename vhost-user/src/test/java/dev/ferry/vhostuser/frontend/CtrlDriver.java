package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;

import java.util.List;

/**
 * A test's own driver of a NIC's control queue, from the test thread: it readies every pair's
 * rings (no buffers) and the control queue — at 2N with MQ negotiated, at 2 without — then sends
 * requests exactly as given, hostile ones included, and reads the ack.
 */
final class CtrlDriver {
    private static final long AREA = 32L << 20;
    private static final long REQ = AREA + 0x20000;
    private static final long ACK = AREA + 0x21000;
    private final IoBus mmio;
    private final long regs;
    private final DeviceMemory mem;
    private final DriverQueue ctrl;
    private final int ctrlIndex;

    CtrlDriver(MqNetVm vm, int pairs) {
        this(vm, Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(VirtioNet.F_CTRL_VQ) | Virtio.bit(VhostUserNet.F_MQ),
                2 * pairs);
    }

    /**
     * Accepts {@code accept} and readies queues 0..{@code ctrlIndex}, the last being the control
     * queue (2 for one pair or without MQ).
     */
    CtrlDriver(MqNetVm vm, long accept, int ctrlIndex) {
        this.mmio = vm.machine.mmio();
        this.regs = vm.nic.transport().base();
        this.mem = vm.machine.deviceMemory();
        mmio.write(regs + 0x070, 4, 0);
        mmio.write(regs + 0x070, 4, Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER);
        for (int sel = 0; sel < 2; sel++) {
            mmio.write(regs + 0x024, 4, sel);
            mmio.write(regs + 0x020, 4, accept >>> (32 * sel) & 0xffffffffL);
        }
        int st = Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_FEATURES_OK;
        mmio.write(regs + 0x070, 4, st);
        if ((mmio.read(regs + 0x070, 4) & Virtio.STATUS_FEATURES_OK) == 0) {
            throw new IllegalStateException("features refused");
        }
        QueueConfig c = null;
        for (int q = 0; q <= ctrlIndex; q++) {
            c = QueueConfig.contiguous(64, AREA + 0x2000L * q, 0);
            mmio.write(regs + 0x030, 4, q);
            mmio.write(regs + 0x038, 4, 64);
            address(0x080, c.descGpa());
            address(0x090, c.availGpa());
            address(0x0a0, c.usedGpa());
            mmio.write(regs + 0x044, 4, 1);
        }
        this.ctrl = DriverQueue.builder(mem, c).build();
        this.ctrlIndex = ctrlIndex;
        mmio.write(regs + 0x070, 4, st | Virtio.STATUS_DRIVER_OK);
    }

    private void address(int reg, long gpa) {
        mmio.write(regs + reg, 4, gpa & 0xffffffffL);
        mmio.write(regs + reg + 4, 4, gpa >>> 32);
    }

    /** Class, command and {@code data} as bytes; returns the ack. */
    int command(int cls, int cmd, int... data) throws InterruptedException {
        byte[] b = new byte[data.length];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) data[i];
        }
        return command(cls, cmd, b);
    }

    int command(int cls, int cmd, byte[] data) throws InterruptedException {
        mem.writeU8(REQ, cls);
        mem.writeU8(REQ + 1, cmd);
        mem.write(REQ + 2, data, 0, data.length);
        mem.writeU8(ACK, 0xee);
        ctrl.add(List.of(new DriverQueue.Buffer(REQ, 2 + data.length)), List.of(new DriverQueue.Buffer(ACK, 1)), false);
        mmio.write(regs + 0x050, 4, ctrlIndex);
        long deadline = System.nanoTime() + 5_000_000_000L;
        DriverQueue.Used u;
        while ((u = ctrl.pollUsed()) == null) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the control request was not completed within 5 s");
            }
            Thread.sleep(1);
        }
        if (u.length() != 1) {
            throw new AssertionError("ack length " + u.length());
        }
        return mem.readU8(ACK);
    }

    /** The config space's byte at {@code offset}, as the driver reads it. */
    int config(int offset) {
        return (int) mmio.read(regs + 0x100 + offset, 1);
    }

    /** A request of one device-readable byte (no command) and an ack byte. */
    void shortHeader() {
        mem.writeU8(REQ, 0);
        ctrl.add(List.of(new DriverQueue.Buffer(REQ, 1)), List.of(new DriverQueue.Buffer(ACK, 1)), false);
        mmio.write(regs + 0x050, 4, ctrlIndex);
    }

    /** A request of {@code length} device-readable bytes at {@code gpa} (outside guest RAM, say) and an ack byte. */
    void requestAt(long gpa, int length) {
        ctrl.add(List.of(new DriverQueue.Buffer(gpa, length)), List.of(new DriverQueue.Buffer(ACK, 1)), false);
        mmio.write(regs + 0x050, 4, ctrlIndex);
    }

    /** A request with class and command but no device-writable ack byte. */
    void noAck() {
        mem.writeU8(REQ, 4);
        mem.writeU8(REQ + 1, 0);
        ctrl.add(List.of(new DriverQueue.Buffer(REQ, 4)), List.of(), false);
        mmio.write(regs + 0x050, 4, ctrlIndex);
    }
}
