package dev.ferry.virtio.balloon;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.PrecopyNotifier;
import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The balloon's device part of the migration stream: a round trip carries num_pages, actual, the
 * hint id and the inflated set (punched on the destination), and every hostile value or
 * truncation is refused with the device left as it was.
 */
@Timeout(30)
class BalloonStateTest {
    private static final long ALL = Virtio.bit(VirtioBalloon.F_STATS_VQ) | Virtio.bit(VirtioBalloon.F_FREE_PAGE_HINT);

    private static byte[] save(VirtioBalloon b) throws IOException {
        ByteArraySaveStream out = new ByteArraySaveStream();
        b.save(out);
        return out.toByteArray();
    }

    private static void load(VirtioBalloon b, byte[] blob) throws IOException, MigrationException {
        b.load(new ByteArrayLoadStream(blob), 1);
    }

    @Test
    void roundTripCarriesTheBalloonAndPunchesTheDestination() throws Exception {
        byte[] blob;
        try (BalloonGuest src = new BalloonGuest(Map.of())) {
            src.bringUp(ALL, 4);
            src.g.mem.fill(BalloonGuest.POOL, 1 << 20, (byte) 1);
            src.sendPfns(0, 0, BalloonGuest.pfnRange(BalloonGuest.POOL, 10));
            src.sendPfns(0, 1, BalloonGuest.pfnRange(BalloonGuest.POOL + 20 * 4096, 5));
            src.balloon.setTarget(MmioGuest.RAM - 15 * 4096);
            src.g.write(0x104, 15);
            src.g.machine.migration().notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            src.g.machine.migration().notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            blob = save(src.balloon);
            // be32 num, actual, cmd id, status, nruns; 2 runs of 16 bytes.
            assertEquals(20 + 32, blob.length);
            ByteBuffer b = ByteBuffer.wrap(blob);
            assertEquals(15, b.getInt(0));
            assertEquals(15, b.getInt(4));
            assertEquals(0x80000001, b.getInt(8));
            assertEquals(FreePageHinting.State.REQUESTED.wire, b.getInt(12));
            assertEquals(2, b.getInt(16));
            assertEquals(BalloonGuest.POOL >>> 12, b.getLong(20));
            assertEquals(10, b.getLong(28));
            assertEquals((BalloonGuest.POOL >>> 12) + 20, b.getLong(36));
            assertEquals(5, b.getLong(44));
        }
        try (BalloonGuest dst = new BalloonGuest(Map.of())) {
            dst.g.mem.fill(BalloonGuest.POOL, 1 << 20, (byte) 1); // RAM arrived before the device state
            long allocated = dst.g.machine.memory().allocatedBytes();
            load(dst.balloon, blob);
            assertEquals(0, dst.g.machine.memory().discardedPages(), "nothing applied before commit");
            dst.balloon.commitLoad();
            assertEquals(15, dst.balloon.numPages());
            assertEquals(15, dst.balloon.actualPages());
            assertEquals(15, dst.g.machine.memory().discardedPages());
            assertTrue(dst.g.machine.memory().isDiscarded(new Gpa(BalloonGuest.POOL + 24 * 4096)));
            assertEquals(15 * 4096, allocated - dst.g.machine.memory().allocatedBytes(), "the destination's host saves it too");
            assertEquals(FreePageHinting.State.DONE, dst.balloon.hinting().state(), "no round runs on a destination");
            dst.balloon.hinting().onPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            assertEquals(0x80000002, dst.balloon.hinting().cmdId(), "ids go on from the source's");
        }
    }

    @Test
    void hostileValuesAndTruncationsAreRefusedAndChangeNothing() throws Exception {
        long ramPages = MmioGuest.RAM >>> 12;
        try (BalloonGuest dst = new BalloonGuest(Map.of())) {
            byte[] good = blob(0, 0, 0x80000000, 3, new long[] {BalloonGuest.POOL >>> 12, 4});
            load(dst.balloon, good); // accepted
            String[] why = {
                refuse(dst, blob((int) ramPages + 1, 0, 0, 3, new long[0]), "num_pages"),
                refuse(dst, blob(0, (int) ramPages + 1, 0, 3, new long[0]), "actual"),
                refuse(dst, blob(-1, 0, 0, 3, new long[0]), "num_pages"),
                refuse(dst, blob(0, 0, 0, 4, new long[0]), "status"),
                refuse(dst, blob(0, 0, 0, 3, new long[] {100, 0}), "empty"),
                refuse(dst, blob(0, 0, 0, 3, new long[] {100, 10, 105, 1}), "overlaps"),
                refuse(dst, blob(0, 0, 0, 3, new long[] {ramPages - 1, 2}), "not inside guest RAM"),
                refuse(dst, blob(0, 0, 0, 3, new long[] {Long.MAX_VALUE, 1}), "out of order"),
                refuse(dst, countOnly(Integer.MAX_VALUE), "runs"),
                refuse(dst, countOnly(-1), "runs"),
            };
            assertEquals(10, why.length);
            for (int n = 0; n < good.length; n++) {
                byte[] cut = Arrays.copyOf(good, n);
                assertThrows(IOException.class, () -> load(dst.balloon, cut), "truncated at " + n);
            }
            assertEquals(0, dst.balloon.numPages());
            assertEquals(0, dst.g.machine.memory().discardedPages(), "no refusal punched anything");
        }
    }

    private static String refuse(BalloonGuest g, byte[] blob, String expect) {
        MigrationException e = assertThrows(MigrationException.class, () -> load(g.balloon, blob));
        assertTrue(e.getMessage().contains(expect), e.getMessage() + " should mention " + expect);
        assertTrue(e.getMessage().startsWith("dev0:"), e.getMessage());
        return e.getMessage();
    }

    private static byte[] blob(int num, int actual, int cmd, int status, long[] runs) {
        ByteBuffer b = ByteBuffer.allocate(20 + 8 * runs.length);
        b.putInt(num).putInt(actual).putInt(cmd).putInt(status).putInt(runs.length / 2);
        for (long r : runs) {
            b.putLong(r);
        }
        return b.array();
    }

    private static byte[] countOnly(int nruns) {
        return ByteBuffer.allocate(20).putInt(0).putInt(0).putInt(0).putInt(3).putInt(nruns).array();
    }
}
