package dev.ferry.vhostuser.proto;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * The payload layouts of vhost-user messages, encoded and decoded with every size and count
 * checked: a payload of the wrong size, a region count past the limit or a config read past the
 * config space is a {@link VhostUserException} naming the request and the rule, never an index
 * error or a silently truncated value. Little-endian (the specification says native; Ferry runs on
 * x86-64).
 */
public final class Payloads {
    private Payloads() {
    }

    /** One region of a memory table; {@code userAddr} is in the front-end's address space. */
    public record MemRegion(long guestPhysAddr, long size, long userAddr, long mmapOffset) {
        public static final int SIZE = 32;

        public boolean containsGpa(long gpa, long len) {
            return len >= 0 && gpa - guestPhysAddr >= 0 && gpa - guestPhysAddr <= size - len;
        }

        public boolean containsUser(long addr, long len) {
            return len >= 0 && addr - userAddr >= 0 && addr - userAddr <= size - len;
        }
    }

    /** {@code struct vhost_vring_state}: a queue and a number (size, base index or enable). */
    public record VringState(int index, int num) {
        public static final int SIZE = 8;
    }

    /** {@code struct vhost_vring_addr}: ring addresses in the front-end's address space, log address a GPA. */
    public record VringAddr(int index, int flags, long desc, long used, long avail, long log) {
        public static final int SIZE = 40;
    }

    /** SET_LOG_BASE: the size of the shared log and its offset in the descriptor. */
    public record LogBase(long size, long offset) {
        public static final int SIZE = 16;
    }

    /** GET/SET_CONFIG: a window of the device's config space. */
    public record Config(int offset, int size, int flags, byte[] data) {
        public static final int HEADER = 12;
        /** QEMU's VHOST_USER_MAX_CONFIG_SIZE. */
        public static final int MAX = 256;
    }

    /** GET/SET_INFLIGHT_FD: the inflight region's size and offset, and the queues it covers. */
    public record Inflight(long mmapSize, long mmapOffset, int numQueues, int queueSize) {
        public static final int SIZE = 24;
    }

    /** SET_DEVICE_STATE_FD: which way and in which phase the state moves. */
    public record DeviceStateTransfer(int direction, int phase) {
        public static final int SIZE = 8;
    }

    // ---- encoding ----

    public static byte[] u64(long v) {
        return buf(8).putLong(v).array();
    }

    public static byte[] vringState(int index, int num) {
        return buf(VringState.SIZE).putInt(index).putInt(num).array();
    }

    public static byte[] vringAddr(VringAddr a) {
        return buf(VringAddr.SIZE).putInt(a.index()).putInt(a.flags()).putLong(a.desc()).putLong(a.used())
                .putLong(a.avail()).putLong(a.log()).array();
    }

    public static byte[] memTable(List<MemRegion> regions) {
        if (regions.isEmpty() || regions.size() > VhostUser.MAX_MEM_REGIONS) {
            throw new IllegalArgumentException(regions.size() + " memory regions: 1.." + VhostUser.MAX_MEM_REGIONS);
        }
        ByteBuffer b = buf(8 + MemRegion.SIZE * regions.size()).putInt(regions.size()).putInt(0);
        for (MemRegion r : regions) {
            putRegion(b, r);
        }
        return b.array();
    }

    /** ADD_MEM_REG / REM_MEM_REG: 8 bytes of padding, then one region. */
    public static byte[] singleRegion(MemRegion r) {
        ByteBuffer b = buf(8 + MemRegion.SIZE).putLong(0);
        putRegion(b, r);
        return b.array();
    }

    private static void putRegion(ByteBuffer b, MemRegion r) {
        b.putLong(r.guestPhysAddr()).putLong(r.size()).putLong(r.userAddr()).putLong(r.mmapOffset());
    }

    public static byte[] logBase(LogBase l) {
        return buf(LogBase.SIZE).putLong(l.size()).putLong(l.offset()).array();
    }

    public static byte[] config(Config c) {
        return buf(Config.HEADER + c.data().length).putInt(c.offset()).putInt(c.size()).putInt(c.flags())
                .put(c.data()).array();
    }

    public static byte[] inflight(Inflight i) {
        return buf(Inflight.SIZE).putLong(i.mmapSize()).putLong(i.mmapOffset()).putShort((short) i.numQueues())
                .putShort((short) i.queueSize()).putInt(0).array();
    }

    public static byte[] deviceStateTransfer(DeviceStateTransfer t) {
        return buf(DeviceStateTransfer.SIZE).putInt(t.direction()).putInt(t.phase()).array();
    }

    /** SEND_RARP: the MAC in the first six bytes of a u64. */
    public static byte[] rarp(byte[] mac) {
        if (mac.length != 6) {
            throw new IllegalArgumentException("a MAC has 6 bytes, not " + mac.length);
        }
        return buf(8).put(mac).putShort((short) 0).array();
    }

    private static ByteBuffer buf(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    // ---- decoding (checked) ----

    public static long u64(VhostUserMessage m) throws VhostUserException {
        exact(m, 8);
        return m.buffer().getLong();
    }

    public static VringState vringState(VhostUserMessage m) throws VhostUserException {
        exact(m, VringState.SIZE);
        ByteBuffer b = m.buffer();
        return new VringState(b.getInt(), b.getInt());
    }

    public static VringAddr vringAddr(VhostUserMessage m) throws VhostUserException {
        exact(m, VringAddr.SIZE);
        ByteBuffer b = m.buffer();
        return new VringAddr(b.getInt(), b.getInt(), b.getLong(), b.getLong(), b.getLong(), b.getLong());
    }

    /** SET_MEM_TABLE: the count must be 1..8, the size exactly its regions, one descriptor per region. */
    public static List<MemRegion> memTable(VhostUserMessage m) throws VhostUserException {
        if (m.size() < 8) {
            throw bad(m, "holds " + m.size() + " bytes, less than its 8-byte region count");
        }
        ByteBuffer b = m.buffer();
        long n = Integer.toUnsignedLong(b.getInt());
        b.getInt();
        if (n < 1 || n > VhostUser.MAX_MEM_REGIONS) {
            throw bad(m, "announces " + n + " regions; 1.." + VhostUser.MAX_MEM_REGIONS + " are allowed");
        }
        if (m.size() != 8 + n * MemRegion.SIZE) {
            throw bad(m, "holds " + m.size() + " bytes for " + n + " regions; " + (8 + n * MemRegion.SIZE) + " expected");
        }
        if (m.fdCount() != n) {
            throw bad(m, "came with " + m.fdCount() + " descriptors for " + n + " regions");
        }
        List<MemRegion> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            MemRegion r = new MemRegion(b.getLong(), b.getLong(), b.getLong(), b.getLong());
            checkRegion(m, r);
            out.add(r);
        }
        return out;
    }

    public static MemRegion singleRegion(VhostUserMessage m) throws VhostUserException {
        exact(m, 8 + MemRegion.SIZE);
        ByteBuffer b = m.buffer();
        b.getLong();
        MemRegion r = new MemRegion(b.getLong(), b.getLong(), b.getLong(), b.getLong());
        checkRegion(m, r);
        return r;
    }

    private static void checkRegion(VhostUserMessage m, MemRegion r) throws VhostUserException {
        if (r.size() <= 0 || ((r.size() | r.mmapOffset()) & (VhostUser.LOG_PAGE - 1)) != 0
                || r.guestPhysAddr() + r.size() < r.guestPhysAddr() || r.userAddr() + r.size() < r.userAddr()) {
            throw bad(m, String.format("region gpa 0x%x size 0x%x uaddr 0x%x offset 0x%x: size and offset must be "
                    + "non-zero multiples of 4 KiB and the ranges must not wrap", r.guestPhysAddr(), r.size(),
                    r.userAddr(), r.mmapOffset()));
        }
    }

    /** SET_LOG_BASE: 16 bytes (QEMU), one descriptor; the log must be non-empty and at most {@code maxSize}. */
    public static LogBase logBase(VhostUserMessage m, long maxSize) throws VhostUserException {
        exact(m, LogBase.SIZE);
        if (m.fdCount() != 1) {
            throw bad(m, "came with " + m.fdCount() + " descriptors; the shared log needs exactly one");
        }
        ByteBuffer b = m.buffer();
        LogBase l = new LogBase(b.getLong(), b.getLong());
        if (l.size() <= 0 || l.size() > maxSize || l.offset() < 0 || (l.offset() & (VhostUser.LOG_PAGE - 1)) != 0) {
            throw bad(m, "log of " + l.size() + " bytes at offset " + l.offset() + ": must be 1.." + maxSize
                    + " bytes at a page-aligned offset");
        }
        return l;
    }

    public static Config config(VhostUserMessage m) throws VhostUserException {
        if (m.size() < Config.HEADER) {
            throw bad(m, "holds " + m.size() + " bytes, less than its 12-byte header");
        }
        ByteBuffer b = m.buffer();
        long off = Integer.toUnsignedLong(b.getInt());
        long size = Integer.toUnsignedLong(b.getInt());
        int flags = b.getInt();
        if (size > Config.MAX || off > Config.MAX || off + size > Config.MAX || m.size() != Config.HEADER + size) {
            throw bad(m, "config window offset " + off + " size " + size + " in " + m.size()
                    + " bytes: the window must lie in " + Config.MAX + " bytes and fill the payload");
        }
        byte[] data = new byte[(int) size];
        b.get(data);
        return new Config((int) off, (int) size, flags, data);
    }

    public static Inflight inflight(VhostUserMessage m) throws VhostUserException {
        if (m.size() != Inflight.SIZE && m.size() != 20) {
            throw bad(m, "holds " + m.size() + " bytes; " + Inflight.SIZE + " expected");
        }
        ByteBuffer b = m.buffer();
        return new Inflight(b.getLong(), b.getLong(), Short.toUnsignedInt(b.getShort()),
                Short.toUnsignedInt(b.getShort()));
    }

    public static DeviceStateTransfer deviceStateTransfer(VhostUserMessage m) throws VhostUserException {
        exact(m, DeviceStateTransfer.SIZE);
        ByteBuffer b = m.buffer();
        return new DeviceStateTransfer(b.getInt(), b.getInt());
    }

    public static byte[] rarpMac(VhostUserMessage m) throws VhostUserException {
        if (m.size() < 6 || m.size() > 8) {
            throw bad(m, "holds " + m.size() + " bytes; a MAC in a u64 (8) expected");
        }
        byte[] mac = new byte[6];
        m.buffer().get(mac);
        return mac;
    }

    /**
     * The queue index of a KICK/CALL/ERR payload, checked against {@code queues}, and whether a
     * descriptor must come with it (bit 8 clear) — and did.
     */
    public static int vringFdIndex(VhostUserMessage m, int queues) throws VhostUserException {
        long v = u64(m);
        int index = (int) (v & VhostUser.VRING_IDX_MASK);
        boolean nofd = (v & VhostUser.VRING_NOFD_MASK) != 0;
        if ((v & ~(VhostUser.VRING_IDX_MASK | VhostUser.VRING_NOFD_MASK)) != 0) {
            throw bad(m, String.format("payload 0x%x sets bits other than the queue index and no-fd bit 8", v));
        }
        if (index >= queues) {
            throw bad(m, "names queue " + index + " of " + queues);
        }
        if (nofd != (m.fdCount() == 0) || m.fdCount() > 1) {
            throw bad(m, "came with " + m.fdCount() + " descriptors while bit 8 (no fd) is " + (nofd ? "set" : "clear"));
        }
        return index;
    }

    /** A payload of exactly {@code size} bytes. */
    public static void exact(VhostUserMessage m, int size) throws VhostUserException {
        if (m.size() != size) {
            throw bad(m, "holds " + m.size() + " bytes; " + size + " expected");
        }
    }

    /** A request that must come without descriptors. */
    public static void noFds(VhostUserMessage m) throws VhostUserException {
        if (m.fdCount() != 0) {
            throw bad(m, "came with " + m.fdCount() + " descriptors; it carries none");
        }
    }

    public static VhostUserException bad(VhostUserMessage m, String rule) {
        return new VhostUserException(m.name() + " " + rule);
    }
}
