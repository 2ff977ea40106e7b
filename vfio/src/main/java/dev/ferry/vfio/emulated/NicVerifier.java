package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;

import java.util.Arrays;

import static dev.ferry.vfio.emulated.NicRegisters.DESC_DD;
import static dev.ferry.vfio.emulated.NicRegisters.DESC_LOOPBACK;
import static dev.ferry.vfio.emulated.NicRegisters.DESC_SIZE;
import static dev.ferry.vfio.emulated.NicRegisters.DESC_VLAN;
import static dev.ferry.vfio.emulated.NicRegisters.MAX_BUF_SIZE;

/**
 * Checks what an emulated NIC VF wrote into guest memory by DMA, from guest memory alone: the
 * proof that a migration carried both the device's state and every page its DMA touched.
 *
 * <p>The VF, in auto-recycle mode, puts its {@code k}-th accepted frame into RX descriptor
 * {@code k mod N}. The verifier replays the wire through the programmed filter, so it knows which
 * sequence number delivery {@code k} must carry, and checks the whole ring:
 * <ul>
 *   <li>the descriptors hold exactly the last {@code N} deliveries (or all, while fewer), each in
 *       its slot: a missing one is a gap, an old one where a newer belongs a repeat or a restart;</li>
 *   <li>each buffer holds byte for byte the wire's frame with that sequence number, with the
 *       length, VLAN, RSS hash and digest the write-back claims.</li>
 * </ul>
 * Across a migration, the destination's ring must pass and show more deliveries than the source
 * had, and the destination's counters must count every delivery since the start. Guest memory
 * the migration did not carry fails the check, naming the descriptor and the guest page.
 *
 * <p>Wire traffic only: loopback frames are reported as unexpected. Not thread-safe; verify a
 * stopped VF (or accept that a running one may be mid-frame).
 */
public final class NicVerifier {
    /** A ring that failed verification; the message names the descriptor and guest address. */
    public static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    /** What a ring showed: deliveries so far, the last frame's sequence number, their bytes. */
    public record Report(long deliveries, long lastSequence, long bytes) {
    }

    private final GuestMemory memory;
    private final NicDriver.Layout layout;
    private final NicFilter filter;
    private final boolean promiscuous;
    private final NicWire wire;
    /** accepted[k]: the sequence number of the k-th frame the filter passes; seqs below scanned are known. */
    private long[] accepted = new long[1024];
    private int acceptedCount;
    private long scanned;

    public NicVerifier(GuestMemory memory, NicDriver.Layout layout, NicFilter filter, boolean promiscuous,
                       long wireSeed) {
        this(memory, layout, filter, promiscuous, wireSeed, 0);
    }

    /**
     * A verifier for a ring the driver set up when the wire had reached frame {@code firstFrame}
     * (a driver that brought the VF up again after a reset: the wire went on meanwhile, and the
     * ring's first delivery is the first frame from there that the filter passes).
     */
    public NicVerifier(GuestMemory memory, NicDriver.Layout layout, NicFilter filter, boolean promiscuous,
                       long wireSeed, long firstFrame) {
        this.memory = memory;
        this.layout = layout;
        this.filter = filter;
        this.promiscuous = promiscuous;
        this.wire = new NicWire(wireSeed);
        this.scanned = firstFrame;
    }

    /** A verifier for what {@code driver} programmed, over {@code memory} (the source's or a destination's). */
    public static NicVerifier of(NicDriver driver, GuestMemory memory, long wireSeed) {
        return new NicVerifier(memory, driver.layout(), driver.programmed(), driver.promiscuous(), wireSeed);
    }

    /** Delivery index of frame {@code seq}, or -1 if the filter rejects it. */
    private long delivery(long seq) {
        while (scanned <= seq) {
            if (filter.accepts(wire.destination(scanned), wire.vlan(scanned), promiscuous)) {
                if (acceptedCount == accepted.length) {
                    accepted = Arrays.copyOf(accepted, accepted.length * 2);
                }
                accepted[acceptedCount++] = scanned;
            }
            scanned++;
        }
        int i = Arrays.binarySearch(accepted, 0, acceptedCount, seq);
        return i < 0 ? -1 : i;
    }

    private long sequenceOf(long k) {
        while (acceptedCount <= k) {
            delivery(scanned);
        }
        return accepted[(int) k];
    }

    private long descriptor(int slot) {
        return layout.rxRingAddress() + (long) slot * DESC_SIZE;
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /** Verifies the RX ring; throws {@link Failure} at the first thing wrong. */
    public Report verify() {
        int n = layout.rxRing();
        long[] held = new long[n];
        long newest = -1;
        for (int i = 0; i < n; i++) {
            long d = descriptor(i);
            int status = memory.readInt(Gpa.of(d + 12));
            held[i] = -1;
            if ((status & DESC_DD) == 0) {
                continue;
            }
            if ((status & DESC_LOOPBACK) != 0) {
                throw new Failure("RX descriptor " + i + " at " + hex(d) + " holds a loopback frame; only wire traffic"
                        + " is verifiable");
            }
            long seq = memory.readLong(Gpa.of(d + 16));
            long k = seq < 0 ? -1 : delivery(seq);
            if (k < 0) {
                throw new Failure("RX descriptor " + i + " at " + hex(d) + " holds frame " + seq
                        + ", which the programmed filter rejects");
            }
            if (k % n != i) {
                throw new Failure("RX descriptor " + i + " at " + hex(d) + " holds delivery " + k + " (frame " + seq
                        + "), which belongs in descriptor " + k % n);
            }
            held[i] = k;
            newest = Math.max(newest, k);
        }
        if (newest < 0) {
            return new Report(0, -1, 0);
        }
        long oldest = Math.max(0, newest - n + 1);
        try (Mapping expected = Mapping.anonymous(MAX_BUF_SIZE)) {
            for (long k = oldest; k <= newest; k++) {
                int slot = (int) (k % n);
                long seq = sequenceOf(k);
                if (held[slot] != k) {
                    throw new Failure("RX descriptor " + slot + " at " + hex(descriptor(slot)) + (held[slot] < 0
                            ? " holds no frame" : " holds delivery " + held[slot]) + ", but delivery " + k + " (frame "
                            + seq + ") belongs there: the ring has a " + (held[slot] < 0 ? "gap" : "stale entry")
                            + " below delivery " + newest);
                }
                checkFrame(slot, seq, expected.address());
            }
        }
        long bytes = 0;
        for (long k = 0; k <= newest; k++) {
            bytes += wire.length(sequenceOf(k));
        }
        return new Report(newest + 1, sequenceOf(newest), bytes);
    }

    private void checkFrame(int slot, long seq, long expected) {
        long d = descriptor(slot);
        long buffer = memory.readLong(Gpa.of(d));
        int length = memory.readInt(Gpa.of(d + 8));
        int status = memory.readInt(Gpa.of(d + 12));
        long digest = memory.readLong(Gpa.of(d + 24));
        String where = "RX descriptor " + slot + " at " + hex(d) + " (frame " + seq + ")";
        if (buffer != layout.rxBuffer(slot)) {
            throw new Failure(where + " points to buffer " + hex(buffer) + ", not the driver's " + hex(layout.rxBuffer(slot)));
        }
        int len = wire.frame(seq, expected);
        if (length != len) {
            throw new Failure(where + " claims " + length + " bytes; the frame has " + len);
        }
        int vlan = wire.vlan(seq);
        int flags = vlan == 0 ? 0 : DESC_VLAN | vlan << 4;
        int want = DESC_DD | flags | filter.rssHash(expected, len) << 16;
        if (status != want) {
            throw new Failure(where + " has status " + hex(status & 0xFFFF_FFFFL) + ", expected " + hex(want & 0xFFFF_FFFFL)
                    + " (VLAN " + vlan + ", RSS hash of the programmed key)");
        }
        long host = memory.hostAddress(Gpa.of(buffer), len);
        for (int i = 0; i < len; i++) {
            if (NativeMemory.getByte(host + i) != NativeMemory.getByte(expected + i)) {
                long gpa = buffer + i;
                throw new Failure(where + ": RX buffer at " + hex(buffer) + " differs from the wire's frame at byte " + i
                        + " (guest page " + hex(gpa & ~4095L) + ")");
            }
        }
        if (digest != ContentDigest.of(expected, len)) {
            throw new Failure(where + " carries digest " + hex(digest) + ", not the frame's");
        }
    }

    /**
     * Verifies a destination's ring after a migration: it must pass, and show more deliveries
     * than the {@code source} had, continuing them (the replay fixes which frame every later
     * delivery carries, so a gap, a repeat or a restarted wire fails).
     */
    public Report verifyContinues(Report source) {
        Report after = verify();
        if (after.deliveries() <= source.deliveries()) {
            throw new Failure("the destination shows " + after.deliveries() + " deliveries, the source had "
                    + source.deliveries() + ": it delivered nothing new (or restarted)");
        }
        return after;
    }

    /** The VF's counters must count exactly the deliveries the ring shows. */
    public void verifyCounters(Report report, long rxPackets, long rxBytes, long rxDrops) {
        if (rxPackets != report.deliveries() || rxBytes != report.bytes() || rxDrops != 0) {
            throw new Failure("counters RX_PACKETS " + rxPackets + ", RX_BYTES " + rxBytes + ", RX_DROPS " + rxDrops
                    + " do not match the ring's " + report.deliveries() + " deliveries of " + report.bytes() + " bytes");
        }
    }
}
