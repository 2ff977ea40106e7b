package dev.ferry.virtio;

import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The register window of a {@link VirtioMmio} transport: decodes a driver's reads and writes
 * into the transport's register state, including the Status register's negotiation and reset.
 * <pre>
 *   0x000 MagicValue 0x74726976   0x004 Version 2      0x008 DeviceID      0x00c VendorID
 *   0x010 DeviceFeatures (by 0x014 DeviceFeaturesSel)  0x020 DriverFeatures (by 0x024 DriverFeaturesSel)
 *   0x030 QueueSel  0x034 QueueNumMax  0x038 QueueNum  0x044 QueueReady  0x050 QueueNotify
 *   0x060 InterruptStatus  0x064 InterruptACK  0x070 Status
 *   0x080/084 QueueDesc  0x090/094 QueueDriver (avail)  0x0a0/0a4 QueueDevice (used)
 *   0x0ac SHMSel  0x0b0/0b4 SHMLen (-1: none)  0x0c0 QueueReset  0x0fc ConfigGeneration  0x100+ config
 * </pre>
 * QueueNotify is not decoded here: the transport signals the queue's eventfd without its lock.
 *
 * <h2>Threads</h2>
 * vCPU threads, always holding the transport's lock; the state it changes is the transport's.
 */
final class MmioRegisters {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioMmio.class);

    private final VirtioMmio t;

    MmioRegisters(VirtioMmio transport) {
        this.t = transport;
    }

    /** A register or config read. Holding the transport's lock. */
    long read(long offset, int size) {
        if (offset >= 0x100) {
            byte[] cfg = t.model.config();
            long off = offset - 0x100;
            if (off + size > cfg.length) {
                return size >= 8 ? -1L : (1L << (size * 8)) - 1; // QEMU: all ones past the config space
            }
            long v = 0;
            for (int i = size - 1; i >= 0; i--) {
                v = v << 8 | (cfg[(int) off + i] & 0xff);
            }
            return v;
        }
        if (size != 4 || (offset & 3) != 0) {
            LOG.debug("{}: {}-byte read of register 0x{} ignored", t.name, size, Long.toHexString(offset));
            return 0;
        }
        MmioQueue[] queues = t.queues;
        int queueSel = t.queueSel;
        return switch ((int) offset) {
            case 0x000 -> VirtioMmio.MAGIC;
            case 0x004 -> VirtioMmio.VERSION;
            case 0x008 -> t.model.deviceId();
            case 0x00c -> VirtioMmio.VENDOR_ID;
            case 0x010 -> t.hostFeaturesSel > 1 ? 0 : (int) (t.hostFeatures >>> (32 * t.hostFeaturesSel));
            case 0x034 -> queueSel < queues.length ? t.model.queueMaxSize() : 0;
            case 0x038 -> queueSel < queues.length ? queues[queueSel].num : 0;
            case 0x044 -> queueSel < queues.length && queues[queueSel].ready ? 1 : 0;
            case 0x060 -> t.isr;
            case 0x070 -> t.status;
            case 0x080 -> sel() == null ? 0 : (int) sel().desc;
            case 0x084 -> sel() == null ? 0 : (int) (sel().desc >>> 32);
            case 0x090 -> sel() == null ? 0 : (int) sel().avail;
            case 0x094 -> sel() == null ? 0 : (int) (sel().avail >>> 32);
            case 0x0a0 -> sel() == null ? 0 : (int) sel().used;
            case 0x0a4 -> sel() == null ? 0 : (int) (sel().used >>> 32);
            case 0x0b0, 0x0b4 -> 0xffffffffL; // no shared memory regions
            case 0x0fc -> t.configGeneration;
            default -> 0;
        } & 0xffffffffL;
    }

    private MmioQueue sel() {
        return t.queueSel < t.queues.length ? t.queues[t.queueSel] : null;
    }

    /**
     * A register or config write other than QueueNotify. Holding the transport's lock; returns
     * what the model must do on the loop thread, or null.
     */
    Runnable write(long offset, int size, long value) {
        if (offset >= 0x100) {
            t.model.writeConfig((int) (offset - 0x100), size, value);
            return null;
        }
        if (size != 4 || (offset & 3) != 0) {
            LOG.debug("{}: {}-byte write of register 0x{} ignored", t.name, size, Long.toHexString(offset));
            return null;
        }
        int v = (int) value;
        MmioQueue q = sel();
        Runnable onLoop = null;
        switch ((int) offset) {
            case 0x014 -> t.hostFeaturesSel = v;
            case 0x020 -> {
                if ((t.status & Virtio.STATUS_FEATURES_OK) == 0 && t.guestFeaturesSel >= 0 && t.guestFeaturesSel < 2) {
                    t.driverFeatureWords[t.guestFeaturesSel] = v;
                }
            }
            case 0x024 -> t.guestFeaturesSel = v;
            case 0x030 -> t.queueSel = v;
            case 0x038 -> {
                if (q != null && !q.ready) {
                    q.num = v;
                }
            }
            case 0x044 -> queueReady(q, v);
            case 0x064 -> ack(v);
            case 0x070 -> onLoop = status(v);
            case 0x080 -> {
                if (q != null) {
                    q.setAddress(0, false, v);
                }
            }
            case 0x084 -> {
                if (q != null) {
                    q.setAddress(0, true, v);
                }
            }
            case 0x090 -> {
                if (q != null) {
                    q.setAddress(1, false, v);
                }
            }
            case 0x094 -> {
                if (q != null) {
                    q.setAddress(1, true, v);
                }
            }
            case 0x0a0 -> {
                if (q != null) {
                    q.setAddress(2, false, v);
                }
            }
            case 0x0a4 -> {
                if (q != null) {
                    q.setAddress(2, true, v);
                }
            }
            case 0x0c0 -> {
                if (q != null && v == 1) {
                    LOG.debug("{}: queue reset of {} ignored (RING_RESET not offered)", t.name, q.index);
                }
            }
            default -> LOG.debug("{}: write 0x{} to read-only or unknown register 0x{}", t.name,
                    Integer.toHexString(v), Long.toHexString(offset));
        }
        return onLoop;
    }

    private void queueReady(MmioQueue q, int v) {
        if (q == null) {
            return;
        }
        if (v == 0) {
            q.ready = false;
            q.ring = null;
            return;
        }
        if (q.ready) {
            return;
        }
        if (q.num < 1 || q.num > t.model.queueMaxSize() || Integer.bitCount(q.num) != 1) {
            t.fail("queue " + q.index + ": size " + q.num + " is not a power of two up to " + t.model.queueMaxSize());
            return;
        }
        try {
            q.ring = new SplitVirtqueue(t.memory(), q.index, q.num, q.desc, q.avail, q.used, t.guestFeatures);
        } catch (VirtqueueError e) {
            t.fail("queue " + q.index + ": " + e.getMessage());
            return;
        }
        q.ready = true;
    }

    private void ack(int bits) {
        t.isr &= ~bits;
        if (t.isr == 0) {
            t.irq().lower();
        }
    }

    /** A Status write; returns what the model must do on the loop thread, or null. Holding the lock. */
    private Runnable status(int v) {
        if (v == 0) {
            return reset();
        }
        int status = t.status;
        int added = v & ~status;
        if ((v & status) != status) {
            LOG.debug("{}: driver cleared status bits 0x{} without a reset; ignored", t.name,
                    Integer.toHexString(status & ~v));
        }
        if ((added & Virtio.STATUS_FEATURES_OK) != 0) {
            long wanted = Integer.toUnsignedLong(t.driverFeatureWords[0])
                    | Integer.toUnsignedLong(t.driverFeatureWords[1]) << 32;
            if ((wanted & ~t.hostFeatures) != 0 || !Virtio.has(wanted, Virtio.F_VERSION_1)) {
                LOG.info("{}: FEATURES_OK refused: driver features 0x{} ({}), offered 0x{}", t.name,
                        Long.toHexString(wanted), Virtio.has(wanted, Virtio.F_VERSION_1) ? "not offered"
                                : "VERSION_1 missing", Long.toHexString(t.hostFeatures));
                added &= ~Virtio.STATUS_FEATURES_OK;
            } else {
                t.guestFeatures = wanted;
            }
        }
        if ((added & Virtio.STATUS_DRIVER_OK) != 0 && ((status | added) & Virtio.STATUS_FEATURES_OK) == 0) {
            t.status |= added & ~Virtio.STATUS_DRIVER_OK;
            t.fail("DRIVER_OK without FEATURES_OK");
            return null;
        }
        t.status |= added;
        if ((added & Virtio.STATUS_DRIVER_OK) != 0 && t.brokenReason == null) {
            t.started = true;
            if (t.vmRunning) {
                return t::startModel;
            }
        }
        return null;
    }

    /**
     * Status 0: back to the power-on state (spec 4.2.2.1); the driver starts over. The registers
     * reset now; the model drops its queue state on the loop thread before the write returns.
     */
    private Runnable reset() {
        t.status = 0;
        t.isr = 0;
        t.irq().lower();
        t.queueSel = 0;
        t.hostFeaturesSel = 0;
        t.guestFeaturesSel = 0;
        t.guestFeatures = 0;
        t.driverFeatureWords[0] = 0;
        t.driverFeatureWords[1] = 0;
        t.started = false;
        t.brokenReason = null;
        for (MmioQueue q : t.queues) {
            q.ready = false;
            q.ring = null;
            q.num = t.model.queueMaxSize();
            q.desc = 0;
            q.avail = 0;
            q.used = 0;
        }
        return t.model::reset;
    }
}
