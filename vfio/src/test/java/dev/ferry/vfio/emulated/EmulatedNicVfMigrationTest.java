package dev.ferry.vfio.emulated;

import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static dev.ferry.vfio.emulated.NicRegisters.*;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
/**
 * A busy emulated NIC VF as a migrating device: its state and DMA'd memory, moved to a second VF,
 * continue the wire exactly, which {@link NicVerifier} proves and refuses to prove when a page is
 * missing; the DMA log is enough to move that memory.
 */
class EmulatedNicVfMigrationTest extends NicTestBase {
    private record Saved(EmulatedNicVf source, NicDriver driver, Mapping image, long length, NicVerifier.Report report) {
    }

    private Saved busySourceSaved(EmulatedSriovPf pf) throws Exception {
        EmulatedNicVf src = pf.createVf(1, EmulatedVfSpec.parse("state=4M,dirty-rate=1M,pps=20000,seed=7"),
                new GuestDmaSpace(memoryA));
        Nic n = attach(src, memoryA);
        n.driver().bringUp();
        src.dmaLoggingStart(4096, List.of(new IovaRange(0, MEMORY)));
        await(() -> src.counter(RX_PACKETS) > 300, "the source is busy");

        Mapping image = own(Mapping.anonymous(64L << 20));
        long len = 0;
        VfioDataFd fd = own(src.setDeviceState(PRE_COPY));
        long n1;
        while ((n1 = fd.read(image.address() + len, 1 << 20)) > 0) {
            len += n1;
        }
        long during = src.counter(RX_PACKETS);
        await(() -> src.counter(RX_PACKETS) > during + 200, "frames flow during pre-copy");
        while ((n1 = fd.read(image.address() + len, 1 << 20)) > 0) {
            len += n1;
        }
        assertNull(src.setDeviceState(STOP_COPY));
        while ((n1 = fd.read(image.address() + len, 1 << 20)) > 0) {
            len += n1;
        }
        assertEquals(0, n1);
        src.setDeviceState(STOP);
        NicVerifier.Report report = NicVerifier.of(n.driver(), memoryA, src.wireSeed(), src.wirePosition()).verify();
        NicVerifier.of(n.driver(), memoryA, src.wireSeed(), src.wirePosition()).verifyCounters(report, src.counter(RX_PACKETS),
                src.counter(RX_BYTES), src.counter(RX_DROPS));
        assertTrue(report.deliveries() > 500, report.toString());
        assertNull(src.dataPlaneFailure());
        return new Saved(src, n.driver(), image, len, report);
    }

    private EmulatedNicVf destination(EmulatedSriovPf pf) {
        return pf.createVf(0, EmulatedVfSpec.parse("state=4M,dirty-rate=1M,pps=20000,seed=99"),
                new GuestDmaSpace(memoryB));
    }

    private static void load(EmulatedNicVf dst, Saved s) throws VfioException {
        dst.setDeviceState(STOP);
        try (VfioDataFd in = dst.setDeviceState(RESUMING)) {
            for (long done = 0; done < s.length(); ) {
                done += in.write(s.image().address() + done, Math.min(1 << 20, s.length() - done));
            }
            dst.setDeviceState(STOP);
        }
    }

    @Test
    void aBusyVfMovedToAnotherVfContinuesTheWireExactly() throws Exception {
        EmulatedSriovPf pfA = own(new EmulatedSriovPf("pfa", 4));
        EmulatedSriovPf pfB = own(new EmulatedSriovPf("pfb", 4));
        Saved s = busySourceSaved(pfA);
        EmulatedNicVf dst = destination(pfB);
        assertNotEquals(s.source().wireSeed(), dst.wireSeed(), "another PF, index and seed: another wire");

        copy(memoryA, memoryB);
        load(dst, s);
        assertEquals(s.source().stateDigest(), dst.stateDigest(), "the destination holds the source's state");
        assertEquals(s.source().wireSeed(), dst.wireSeed());
        assertEquals(s.source().filter(), dst.filter(), "mailbox-programmed state travels");
        dst.setDeviceState(RUNNING);
        await(() -> dst.counter(RX_PACKETS) > s.report().deliveries() + 300, "the destination delivers");
        dst.setDeviceState(STOP);

        NicVerifier verifier = NicVerifier.of(s.driver(), memoryB, dst.wireSeed(), dst.wirePosition());
        NicVerifier.Report after = verifier.verifyContinues(s.report());
        verifier.verifyCounters(after, dst.counter(RX_PACKETS), dst.counter(RX_BYTES), dst.counter(RX_DROPS));
        assertTrue(after.lastSequence() > s.report().lastSequence());
        assertNull(dst.dataPlaneFailure());
        // the destination's BAR, read by a driver on its own bus, shows the source's registers
        Nic seen = attach(dst, memoryB);
        assertEquals(CTRL_RX_EN | CTRL_AUTO_RECYCLE, seen.driver().register(CTRL));
        assertEquals(LAYOUT.rxRingAddress(), seen.mmio().read(BAR + RX_BASE, 8));
    }

    /** Copies the pages the bitmap (one bit per 4 KiB page from 0) marks from A to B; returns how many. */
    private int copyDirty(Mapping bitmap) {
        long from = memoryA.regions().get(0).hostAddress(0);
        long to = memoryB.regions().get(0).hostAddress(0);
        int pages = 0;
        for (long w = 0; w < MEMORY / 4096 / 64; w++) {
            long word = NativeMemory.getAndSetLong(bitmap.address() + w * 8, 0);
            while (word != 0) {
                long page = w * 64 + Long.numberOfTrailingZeros(word);
                word &= word - 1;
                NativeMemory.copy(from + page * 4096, to + page * 4096, 4096);
                pages++;
            }
        }
        return pages;
    }

    /**
     * RAM migrated the way the engine does it — everything once while the VF runs, then only the
     * pages the DMA log reports, the last pass after the VF stopped — is enough for the
     * destination to continue exactly; leaving out that last pass is not.
     */
    @Test
    void theDmaLogIsEnoughToMigrateTheMemoryOfABusyVf() throws Exception {
        EmulatedSriovPf pfA = own(new EmulatedSriovPf("pfa", 1));
        EmulatedSriovPf pfB = own(new EmulatedSriovPf("pfb", 1));
        EmulatedNicVf src = pfA.createVf(0, EmulatedVfSpec.parse("state=1M,dirty-rate=0,pps=20000"),
                new GuestDmaSpace(memoryA));
        Nic n = attach(src, memoryA);
        n.driver().bringUp();
        src.dmaLoggingStart(4096, List.of(new IovaRange(0, MEMORY)));
        Mapping bitmap = own(Mapping.anonymous(MEMORY / 4096 / 8));
        copy(memoryA, memoryB);
        for (int round = 0; round < 3; round++) {
            long seen = src.counter(RX_PACKETS);
            await(() -> src.counter(RX_PACKETS) > seen + 150, "frames flow in round " + round);
            src.dmaLoggingReport(0, MEMORY, 4096, bitmap.address());
            assertTrue(copyDirty(bitmap) > 0, "the VF dirtied pages in round " + round);
        }
        long lastRound = src.counter(RX_PACKETS);
        await(() -> src.counter(RX_PACKETS) > lastRound + 100, "frames flow after the last live pass");
        src.setDeviceState(STOP);
        Mapping image = own(Mapping.anonymous(8L << 20));
        long len = 0;
        VfioDataFd out = own(src.setDeviceState(STOP_COPY));
        for (long k; (k = out.read(image.address() + len, 1 << 20)) > 0; ) {
            len += k;
        }
        src.dmaLoggingReport(0, MEMORY, 4096, bitmap.address());
        try (Mapping lastPass = Mapping.anonymous(MEMORY / 4096 / 8)) {
            NativeMemory.copy(bitmap.address(), lastPass.address(), MEMORY / 4096 / 8);
            NicVerifier.Report source = NicVerifier.of(n.driver(), memoryA, src.wireSeed(), src.wirePosition()).verify();
            NicVerifier.Report stale = NicVerifier.of(n.driver(), memoryB, src.wireSeed(), src.wirePosition()).verify();
            assertTrue(stale.deliveries() < source.deliveries(),
                    "without the last pass the destination's memory lacks the newest frames: " + stale);
            assertTrue(copyDirty(lastPass) > 0);
            assertEquals(source, NicVerifier.of(n.driver(), memoryB, src.wireSeed(), src.wirePosition()).verify(),
                    "after it, the destination's memory shows exactly the source's ring");

            EmulatedNicVf dst = pfB.createVf(0, src.spec(), new GuestDmaSpace(memoryB));
            dst.setDeviceState(STOP);
            try (VfioDataFd in = dst.setDeviceState(RESUMING)) {
                for (long done = 0; done < len; ) {
                    done += in.write(image.address() + done, len - done);
                }
                dst.setDeviceState(STOP);
            }
            dst.setDeviceState(RUNNING);
            await(() -> dst.counter(RX_PACKETS) > source.deliveries() + 200, "the destination delivers");
            dst.setDeviceState(STOP);
            NicVerifier v = NicVerifier.of(n.driver(), memoryB, dst.wireSeed(), dst.wirePosition());
            v.verifyCounters(v.verifyContinues(source), dst.counter(RX_PACKETS), dst.counter(RX_BYTES),
                    dst.counter(RX_DROPS));
        }
    }

    @Test
    void theVerifierNamesAnRxBufferPageThatWasNotMigrated() throws Exception {
        EmulatedSriovPf pfA = own(new EmulatedSriovPf("pfa", 2));
        EmulatedSriovPf pfB = own(new EmulatedSriovPf("pfb", 2));
        Saved s = busySourceSaved(pfA);
        copy(memoryA, memoryB);
        // the buffer of the source's last delivery: the destination will not overwrite it soon
        int slot = (int) ((s.report().deliveries() - 1) % LAYOUT.rxRing());
        long page = LAYOUT.rxBuffer(slot) & ~4095L;
        memoryB.fill(Gpa.of(page), 4096, (byte) 0);

        EmulatedNicVf dst = destination(pfB);
        load(dst, s);
        dst.setDeviceState(RUNNING);
        await(() -> dst.counter(RX_PACKETS) > s.report().deliveries() + 100, "the destination delivers");
        dst.setDeviceState(STOP);
        NicVerifier.Failure f = assertThrows(NicVerifier.Failure.class,
                () -> NicVerifier.of(s.driver(), memoryB, dst.wireSeed(), dst.wirePosition()).verifyContinues(s.report()));
        assertTrue(f.getMessage().contains("guest page 0x" + Long.toHexString(page)), f.getMessage());
        assertTrue(f.getMessage().contains("RX descriptor "), f.getMessage());
        // the source's own memory is intact
        NicVerifier.of(s.driver(), memoryA, s.source().wireSeed(), s.source().wirePosition()).verify();
    }

    @Test
    void theVerifierCatchesADestinationThatWasNotMigrated() throws Exception {
        EmulatedSriovPf pfA = own(new EmulatedSriovPf("pfa", 2));
        EmulatedSriovPf pfB = own(new EmulatedSriovPf("pfb", 2));
        Saved s = busySourceSaved(pfA);
        copy(memoryA, memoryB);
        // the same VF (PF, index, seed) brought up afresh instead of loaded: it starts the wire over
        EmulatedNicVf fresh = pfB.createVf(1, s.source().spec(), new GuestDmaSpace(memoryB));
        assertEquals(s.source().wireSeed(), fresh.wireSeed());
        attach(fresh, memoryB).driver().bringUp();
        await(() -> fresh.counter(RX_PACKETS) > 100, "the fresh VF delivers");
        fresh.setDeviceState(STOP);
        NicVerifier v = NicVerifier.of(s.driver(), memoryB, fresh.wireSeed(), fresh.wirePosition());
        NicVerifier.Failure f = assertThrows(NicVerifier.Failure.class, () -> {
            NicVerifier.Report r = v.verifyContinues(s.report());
            v.verifyCounters(r, fresh.counter(RX_PACKETS), fresh.counter(RX_BYTES), fresh.counter(RX_DROPS));
        });
        assertNotNull(f.getMessage());
    }

    @Test
    void aDestinationMemoryWithoutTheDmaPagesFails() throws Exception {
        EmulatedSriovPf pfA = own(new EmulatedSriovPf("pfa", 2));
        Saved s = busySourceSaved(pfA);
        // only the driver's setup reached the destination's memory, none of the DMA'd pages
        Nic setup = nic("pps=0", memoryB);
        setup.driver().setUpRings();
        NicVerifier.Failure f = assertThrows(NicVerifier.Failure.class,
                () -> NicVerifier.of(s.driver(), memoryB, s.source().wireSeed(), s.source().wirePosition()).verifyContinues(s.report()));
        assertTrue(f.getMessage().contains("delivered nothing new") || f.getMessage().contains("gap"), f.getMessage());
    }

    // ------------------------------------------------------------------------------------------
    // Control state
}
