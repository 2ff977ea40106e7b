package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;

import java.util.Arrays;
import java.util.function.LongSupplier;

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
 * <p>The ring is guest memory and its frame numbers are whatever the guest (or a stream) wrote:
 * each is bounded by the VF's wire position before the wire is replayed, and the replay keeps
 * only the ring's last {@code N} deliveries, so a verification's heap is in proportion to the ring.
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

    /**
     * The most frames one verification replays (about 9 hours of a VF at 4000 frames/s): the
     * replay costs time in proportion to the frames, never heap, and this bounds the time.
     */
    static final long MAX_REPLAY = 1L << 27;

    private final GuestMemory memory;
    private final NicDriver.Layout layout;
    private final NicFilter filter;
    private final boolean promiscuous;
    private final NicWire wire;
    private final long firstFrame;
    private final LongSupplier wirePosition;

    /**
     * A verifier for a ring the driver set up when the wire had reached frame {@code firstFrame}
     * (a driver that brought the VF up again after a reset: the wire went on meanwhile, and the
     * ring's first delivery is the first frame from there that the filter passes), of a VF whose
     * wire has sent the frames below {@code wirePosition} (read after the descriptors, so a VF
     * that goes on receiving meanwhile is no false alarm). A descriptor naming a frame outside
     * {@code [firstFrame, wirePosition)} fails before anything is replayed.
     */
    public NicVerifier(GuestMemory memory, NicDriver.Layout layout, NicFilter filter, boolean promiscuous,
                       long wireSeed, long firstFrame, LongSupplier wirePosition) {
        if (firstFrame < 0) {
            throw new IllegalArgumentException("first frame " + firstFrame);
        }
        this.memory = memory;
        this.layout = layout;
        this.filter = filter;
        this.promiscuous = promiscuous;
        this.wire = new NicWire(wireSeed);
        this.firstFrame = firstFrame;
        this.wirePosition = wirePosition;
    }

    /**
     * A verifier for what {@code driver} programmed, over {@code memory} (the source's or a
     * destination's), of a VF whose wire has reached frame {@code wireEnd}.
     */
    public static NicVerifier of(NicDriver driver, GuestMemory memory, long wireSeed, long wireEnd) {
        return new NicVerifier(memory, driver.layout(), driver.programmed(), driver.promiscuous(), wireSeed, 0,
                () -> wireEnd);
    }

    private long descriptor(int slot) {
        return layout.rxRingAddress() + (long) slot * DESC_SIZE;
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /**
     * Verifies the RX ring; throws {@link Failure} at the first thing wrong. Every frame number
     * the ring holds is checked against the wire before the wire is replayed up to the newest of
     * them, once, keeping only the last {@code N} deliveries: heap in proportion to the ring.
     */
    public Report verify() {
        int n = layout.rxRing();
        long[] held = new long[n]; // frame number per descriptor, -1 for none
        boolean[] done = new boolean[n]; // the device wrote the descriptor back (DD)
        long newestFrame = -1;
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
            held[i] = memory.readLong(Gpa.of(d + 16));
            done[i] = true;
        }
        long wireEnd = wirePosition.getAsLong(); // after the descriptors: every frame they hold was sent before
        for (int i = 0; i < n; i++) {
            long seq = held[i];
            if (!done[i]) {
                continue;
            }
            if (seq >= wireEnd) {
                throw new Failure("RX descriptor " + i + " at " + hex(descriptor(i)) + " holds frame " + seq
                        + ", which the wire has not sent (it is at frame " + wireEnd + ")");
            }
            if (seq < firstFrame) {
                throw new Failure("RX descriptor " + i + " at " + hex(descriptor(i)) + " holds frame " + seq
                        + ", from before the ring was set up at frame " + firstFrame);
            }
            newestFrame = Math.max(newestFrame, seq);
        }
        if (newestFrame < 0) {
            return new Report(0, -1, 0);
        }
        if (newestFrame - firstFrame >= MAX_REPLAY) {
            throw new Failure("the ring's newest frame " + newestFrame + " lies " + (newestFrame - firstFrame)
                    + " frames past the ring's first; a verification replays at most " + MAX_REPLAY);
        }
        Integer[] bySeq = new Integer[n];
        for (int i = 0; i < n; i++) {
            bySeq[i] = i;
        }
        Arrays.sort(bySeq, (a, b) -> Long.compare(held[a], held[b]));
        int next = 0;
        while (held[bySeq[next]] < 0) {
            next++;
        }
        long[] delivery = new long[n]; // delivery index per descriptor, -1 for none
        Arrays.fill(delivery, -1);
        long[] recent = new long[n]; // frame of delivery k at k mod n, for the last n deliveries
        long deliveries = 0;
        long bytes = 0;
        for (long seq = firstFrame; seq <= newestFrame; seq++) {
            boolean accepted = filter.accepts(wire.destination(seq), wire.vlan(seq), promiscuous);
            for (; next < n && held[bySeq[next]] == seq; next++) {
                int slot = bySeq[next];
                if (!accepted) {
                    throw new Failure("RX descriptor " + slot + " at " + hex(descriptor(slot)) + " holds frame " + seq
                            + ", which the programmed filter rejects");
                }
                delivery[slot] = deliveries;
            }
            if (accepted) {
                recent[(int) (deliveries % n)] = seq;
                bytes += wire.length(seq);
                deliveries++;
            }
        }
        for (int i = 0; i < n; i++) {
            long k = delivery[i];
            if (k >= 0 && k % n != i) {
                throw new Failure("RX descriptor " + i + " at " + hex(descriptor(i)) + " holds delivery " + k + " (frame "
                        + held[i] + "), which belongs in descriptor " + k % n);
            }
        }
        long newest = deliveries - 1;
        long oldest = Math.max(0, newest - n + 1);
        try (Mapping expected = Mapping.anonymous(MAX_BUF_SIZE)) {
            for (long k = oldest; k <= newest; k++) {
                int slot = (int) (k % n);
                long seq = recent[slot];
                if (delivery[slot] != k) {
                    throw new Failure("RX descriptor " + slot + " at " + hex(descriptor(slot)) + (delivery[slot] < 0
                            ? " holds no frame" : " holds delivery " + delivery[slot]) + ", but delivery " + k
                            + " (frame " + seq + ") belongs there: the ring has a "
                            + (delivery[slot] < 0 ? "gap" : "stale entry") + " below delivery " + newest);
                }
                checkFrame(slot, seq, expected.address());
            }
        }
        return new Report(deliveries, newestFrame, bytes);
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
