package dev.ferry.vhostuser.check;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.vhostuser.proto.Payloads.MemRegion;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;

import java.util.BitSet;
import java.util.List;

/**
 * The guest memory the check owns and shares with the back-end: one memfd region at
 * {@link #BASE} (not 0, so a back-end that logs region offsets instead of guest-physical
 * addresses is caught), a shared dirty log, and an off-heap shadow copy to tell which pages
 * changed. Its layout keeps what the driver writes and what the device writes on separate pages,
 * so every changed device page can be held against the back-end's log:
 * <pre>
 *   BASE + 0x00000 + q*0x2000   queue q: descriptors + avail ring   driver
 *   BASE + 0x01000 + q*0x2000   queue q: used ring                  device
 *   BASE + 0x10000              request headers (16 B per slot)     driver
 *   BASE + 0x11000              status bytes (1 B per slot)         device
 *   BASE + 0x100000             out buffers (slot * slotBytes)      driver
 *   BASE + 0x600000             in buffers (slot * slotBytes)       device
 * </pre>
 * Everything the check allocates is fixed in size; nothing grows with the traffic. Owns the
 * memory, the log memfd and both mappings. Used by the check's thread only.
 */
public final class CheckGuest implements AutoCloseable {
    public static final long BASE = 0x10_0000;
    public static final long SIZE = 12L << 20;
    public static final int QUEUE_SIZE = 128;
    public static final int MAX_QUEUES = 2;
    public static final long HEADERS = BASE + 0x1_0000;
    public static final long STATUS = BASE + 0x1_1000;
    public static final long OUT_DATA = BASE + 0x10_0000;
    public static final long IN_DATA = BASE + 0x60_0000;
    public static final long DATA_AREA = 4L << 20;
    public static final int HEADER_BYTES = 16;
    /** The log's size: one bit per 4 KiB page up to the highest guest-physical address, in whole pages. */
    static final long LOG_BYTES = 4096;

    private final GuestMemory memory;
    private final DeviceMemory device;
    private final GuestRegion region;
    private final Mapping shadow;
    private final Fd logFd;
    private final Mapping log;
    private final int slotBytes;

    /** @param slotBytes bytes of each out and in buffer slot; {@link #slots()} slots fit the data areas */
    public CheckGuest(int slotBytes) {
        if (slotBytes < 4096 || slotBytes > DATA_AREA / 8 || (slotBytes & 4095) != 0) {
            throw new IllegalArgumentException("slot of " + slotBytes + " bytes: 4 KiB multiples up to " + DATA_AREA / 8);
        }
        this.slotBytes = slotBytes;
        GuestMemory m = GuestMemory.builder().region("check.ram", BASE, SIZE).build();
        Mapping s = null;
        Fd lf = null;
        try {
            s = Mapping.anonymous(SIZE);
            lf = Sys.memfdCreate("ferry-vhost-user-check-log", Linux.MFD_CLOEXEC);
            Sys.ftruncate(lf, LOG_BYTES);
            this.log = Mapping.shared(lf, 0, LOG_BYTES);
        } catch (RuntimeException e) {
            if (lf != null) {
                lf.close();
            }
            if (s != null) {
                s.close();
            }
            m.close();
            throw e;
        }
        this.memory = m;
        this.device = new DeviceMemory(m);
        this.region = m.regions().get(0);
        this.shadow = s;
        this.logFd = lf;
    }

    public DeviceMemory memory() {
        return device;
    }

    public int slotBytes() {
        return slotBytes;
    }

    /** How many slots the data areas hold (and how many requests may be in flight), at most the queue size. */
    public int slots() {
        return (int) Math.min(QUEUE_SIZE, DATA_AREA / slotBytes);
    }

    public long outBuffer(int slot) {
        return OUT_DATA + (long) slot * slotBytes;
    }

    public long inBuffer(int slot) {
        return IN_DATA + (long) slot * slotBytes;
    }

    /** Queue {@code q}'s rings: descriptors and avail ring on one (driver) page, used ring on the next. */
    public static QueueConfig queue(int q, long features) {
        long desc = BASE + q * 0x2000L;
        return new QueueConfig(QUEUE_SIZE, desc, desc + SplitRing.descTableBytes(QUEUE_SIZE), desc + 0x1000, features);
    }

    /** The memory table: the one region, its memfd, addresses in this process. */
    public List<MemRegion> memTable() {
        return List.of(new MemRegion(region.gpaBase(), region.size(), region.hostBase().raw(), 0));
    }

    public Fd memfd() {
        return region.memfd();
    }

    /** The address the back-end knows {@code gpa} by (this process's mapping, as QEMU sends its own). */
    public long userAddress(long gpa) {
        return region.hostAddress(gpa - BASE);
    }

    public Fd logFd() {
        return logFd;
    }

    public long logBytes() {
        return LOG_BYTES;
    }

    /** Copies guest memory to the shadow: {@link #changedPages} compares against this moment. */
    public void takeShadow() {
        NativeMemory.copy(region.hostBase().raw(), shadow.address(), SIZE);
    }

    /** Guest page frame numbers (gpa / 4096) whose bytes differ from the shadow. */
    public BitSet changedPages() {
        BitSet out = new BitSet();
        long host = region.hostBase().raw();
        long sh = shadow.address();
        for (long off = 0; off < SIZE; off += 4096) {
            for (long w = 0; w < 4096; w += 8) {
                if (NativeMemory.getLong(host + off + w) != NativeMemory.getLong(sh + off + w)) {
                    out.set((int) ((BASE + off) >>> 12));
                    break;
                }
            }
        }
        return out;
    }

    /** The pages the log names, cleared as QEMU harvests it (each u64 swapped with 0). */
    public BitSet harvestLog() {
        BitSet out = new BitSet();
        for (long w = 0; w < LOG_BYTES; w += 8) {
            long bits = NativeMemory.getAndSetLong(log.address() + w, 0);
            while (bits != 0) {
                int b = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                out.set((int) (w * 8 + b));
            }
        }
        return out;
    }

    /** True for pages only the driver (the check) writes: rings' descriptor/avail pages, headers, out buffers. */
    public static boolean driverPage(long pfn) {
        long gpa = pfn << 12;
        if (gpa >= BASE && gpa < BASE + MAX_QUEUES * 0x2000L) {
            return ((gpa - BASE) & 0x1000) == 0;
        }
        return gpa == HEADERS || (gpa >= OUT_DATA && gpa < OUT_DATA + DATA_AREA);
    }

    /** What lives on page {@code pfn}, for evidence. */
    public static String area(long pfn) {
        long gpa = pfn << 12;
        if (gpa >= BASE && gpa < BASE + MAX_QUEUES * 0x2000L) {
            int q = (int) ((gpa - BASE) / 0x2000);
            return (((gpa - BASE) & 0x1000) == 0 ? "desc/avail" : "used ring") + " q" + q;
        }
        if (gpa == HEADERS) {
            return "headers";
        }
        if (gpa == STATUS) {
            return "status";
        }
        if (gpa >= OUT_DATA && gpa < OUT_DATA + DATA_AREA) {
            return "out buffers";
        }
        if (gpa >= IN_DATA && gpa < IN_DATA + DATA_AREA) {
            return "in buffers";
        }
        return "no buffer";
    }

    /** Pages as {@code 0x701 (in buffers), 0x101 (used ring q0)}, at most {@code max} named. */
    public static String describe(BitSet pfns, int max) {
        StringBuilder b = new StringBuilder();
        int shown = 0;
        for (int p = pfns.nextSetBit(0); p >= 0; p = pfns.nextSetBit(p + 1)) {
            if (shown == max) {
                b.append(", ... (").append(pfns.cardinality()).append(" in all)");
                break;
            }
            if (shown > 0) {
                b.append(", ");
            }
            b.append("gpa 0x").append(Long.toHexString((long) p << 12)).append(" (").append(area(p)).append(')');
            shown++;
        }
        return b.toString();
    }

    @Override
    public void close() {
        log.close();
        logFd.close();
        shadow.close();
        memory.close();
    }
}
