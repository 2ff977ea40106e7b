package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.Gpa;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static dev.ferry.vfio.emulated.NicRegisters.RX_BYTES;
import static dev.ferry.vfio.emulated.NicRegisters.RX_DROPS;
import static dev.ferry.vfio.emulated.NicRegisters.RX_PACKETS;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The RX ring is guest memory: a guest (or a stream that carried that memory) can write any frame
 * number into a descriptor. The verifier bounds it by the wire's position before it replays the
 * wire up to it, so a huge number is a clear failure in moments — not a replay that grows the heap
 * until it runs out — and its memory does not grow with the number of frames replayed.
 */
class NicVerifierBoundsTest extends NicTestBase {
    /** A VF that received some frames, stopped; its ring verifies. */
    private Nic stoppedBusyVf() throws Exception {
        Nic n = nic("pps=20000,seed=3", memoryA);
        n.driver().bringUp();
        await(() -> n.vf().counter(RX_PACKETS) > 100, "frames arrive");
        n.vf().setDeviceState(STOP);
        NicVerifier.Report r = verifier(n).verify();
        verifier(n).verifyCounters(r, n.vf().counter(RX_PACKETS), n.vf().counter(RX_BYTES), n.vf().counter(RX_DROPS));
        return n;
    }

    private NicVerifier verifier(Nic n) {
        return NicVerifier.of(n.driver(), memoryA, n.vf().wireSeed(), n.vf().wirePosition());
    }

    /** Writes frame number {@code seq} into RX descriptor 0's write-back (the guest's memory). */
    private void forge(long seq) {
        memoryA.writeLong(Gpa.of(LAYOUT.rxRingAddress() + 16), seq);
    }

    @Test
    void aFrameNumberBeyondTheWireIsRefusedAtOnce() throws Exception {
        Nic n = stoppedBusyVf();
        long position = n.vf().wirePosition();
        for (long seq : new long[] {Long.MAX_VALUE, 1L << 40, position + 1_000_000, position}) {
            forge(seq);
            NicVerifier.Failure f = assertTimeoutPreemptively(Duration.ofSeconds(10),
                    () -> assertThrows(NicVerifier.Failure.class, () -> verifier(n).verify()), "frame " + seq);
            assertEquals("RX descriptor 0 at 0x" + Long.toHexString(LAYOUT.rxRingAddress()) + " holds frame " + seq
                    + ", which the wire has not sent (it is at frame " + position + ")", f.getMessage());
        }
    }

    @Test
    void aNegativeFrameNumberIsRefused() throws Exception {
        Nic n = stoppedBusyVf();
        forge(-5);
        NicVerifier.Failure f = assertThrows(NicVerifier.Failure.class, () -> verifier(n).verify());
        assertTrue(f.getMessage().contains("holds frame -5"), f.getMessage());
    }

    /** The bound is the wire, not a guess: the last frame the wire sent is still verified as it should be. */
    @Test
    void theLastFrameTheWireSentStillVerifies() throws Exception {
        Nic n = stoppedBusyVf();
        NicVerifier.Report r = verifier(n).verify();
        assertTrue(r.lastSequence() < n.vf().wirePosition(), r + " at " + n.vf().wirePosition());
        assertEquals(r, NicVerifier.of(n.driver(), memoryA, n.vf().wireSeed(), r.lastSequence() + 1).verify(),
                "a wire that stopped right after the newest delivery");
        NicVerifier.Failure f = assertThrows(NicVerifier.Failure.class,
                () -> NicVerifier.of(n.driver(), memoryA, n.vf().wireSeed(), r.lastSequence()).verify());
        assertTrue(f.getMessage().contains("which the wire has not sent"), f.getMessage());
    }
}
