package dev.ferry.virtio.guest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Proves a disk image against what the guest driver knows ({@link BlkDriverArea}), with the guest
 * paused: every block holds the generation the driver saw acknowledged last — or, for a block
 * with a write in flight or a write that failed since, that write's generation — whole and valid;
 * a block never acknowledged is zero or holds such a write. And, across a migration, that I/O
 * continued and that no request in flight at switchover was lost or completed twice (the driver
 * counts a completion for an idle slot as an error; a request still in flight long after
 * switchover was lost).
 *
 * <p>Reads the image with plain positional reads on the caller's thread; stateless.
 */
public final class DiskVerifier {
    private DiskVerifier() {
    }

    /** The verdict: {@code ok} when there are no problems; the first problems are named. */
    public record Verdict(boolean ok, long blocksChecked, long blocksWritten, List<String> problems) {
        @Override
        public String toString() {
            return (ok ? "ok" : "FAILED") + ": " + blocksChecked + " blocks checked, " + blocksWritten
                    + " written" + (problems.isEmpty() ? "" : "; " + problems);
        }
    }

    /**
     * Checks {@code image} against the driver's record in {@code area}; a request that completed
     * with an error status is a problem.
     */
    public static Verdict verifyImage(BlkDriverArea area, Path image) throws IOException {
        return verifyImage(area, image, false);
    }

    /**
     * Checks {@code image} against the driver's record in {@code area}. With
     * {@code ioErrorsExpected} (a disk that reports errors to the guest), requests that completed
     * with an error status are no problem in themselves: the image must still hold every
     * acknowledged write, and a block whose write failed holds the acknowledged generation before
     * it or, whole, the failed one.
     */
    public static Verdict verifyImage(BlkDriverArea area, Path image, boolean ioErrorsExpected) throws IOException {
        return verifyImage(area, image, ioErrorsExpected, false);
    }

    /**
     * As above; with {@code resetByPolicy} a driver that stopped at its reset limit (the device
     * kept asking for resets: {@link BlkDriverArea.Progress#deviceNeedsReset}) is no problem in
     * itself — the image must still hold every acknowledged write. A driver that reset its device
     * and went on has no error and needs no excuse.
     */
    public static Verdict verifyImage(BlkDriverArea area, Path image, boolean ioErrorsExpected, boolean resetByPolicy)
            throws IOException {
        List<String> problems = new ArrayList<>();
        BlkDriverArea.Progress p = area.progress();
        if (!p.started()) {
            return new Verdict(false, 0, 0, List.of("the guest driver never started"));
        }
        long seed = area.get(BlkDriverArea.R_SEED);
        long blocks = area.get(BlkDriverArea.R_BLOCKS);
        int depth = (int) area.get(BlkDriverArea.R_DEPTH);
        if (blocks < 0 || blocks > BlkDriverArea.MAX_BLOCKS || depth < 1 || depth > BlkDriverArea.MAX_DEPTH) {
            return new Verdict(false, 0, 0, List.of("the driver's record is corrupt (blocks " + blocks + ", depth "
                    + depth + ")"));
        }
        long[] inflightWrite = new long[(int) blocks];
        for (int s = 0; s < depth; s++) {
            if (area.slotType(s) == BlkDriverArea.WRITE) {
                long b = area.slotBlock(s);
                if (b < blocks) {
                    inflightWrite[(int) b] = area.slotSeq(s);
                }
            }
        }
        if (p.errors() != 0 && !(resetByPolicy && p.deviceNeedsReset())) {
            problems.add("the driver saw " + p.errors() + " protocol error(s), first code " + p.firstError());
        }
        if (p.readMismatches() != 0) {
            problems.add(p.readMismatches() + " read(s) returned something other than the last acknowledged write");
        }
        if (p.ioErrors() != 0 && !ioErrorsExpected) {
            problems.add(p.ioErrors() + " request(s) completed with an error status");
        }
        long written = 0;
        ByteBuffer buf = ByteBuffer.allocate(DiskBlock.SIZE).order(ByteOrder.LITTLE_ENDIAN);
        long[] words = new long[DiskBlock.WORDS];
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ)) {
            for (long b = 0; b < blocks; b++) {
                buf.clear();
                long pos = b * DiskBlock.SIZE;
                while (buf.hasRemaining()) {
                    if (ch.read(buf, pos + buf.position()) < 0) {
                        break;
                    }
                }
                buf.flip();
                java.util.Arrays.fill(words, 0);
                buf.asLongBuffer().get(words, 0, Math.min(words.length, buf.remaining() / 8));
                long got = DiskBlock.generationOf(words, b, seed);
                long acked = area.acknowledged(b);
                long flight = inflightWrite[(int) b];
                if (acked != 0) {
                    written++;
                }
                // In doubt, a valid generation above the acknowledged one can only be a failed
                // write: the driver never has two requests on one block.
                boolean failedWrite = area.inDoubt(b) && got > acked;
                if (got != acked && (flight == 0 || got != flight) && !failedWrite) {
                    if (problems.size() < 8) {
                        problems.add("block " + b + " holds " + (got < 0 ? "no valid data" : "generation " + got)
                                + ", the last acknowledged write is " + acked
                                + (flight != 0 ? " (write " + flight + " in flight)" : ""));
                    } else {
                        problems.set(7, "... more blocks differ");
                    }
                }
            }
        }
        return new Verdict(problems.isEmpty(), blocks, written, List.copyOf(problems));
    }

    /**
     * Proves the driver continued from {@code atSwitchover} (its progress as the source stopped)
     * to {@code now} (on the destination, after it ran long enough to complete {@code margin}
     * more requests): it completed more, and every request in flight at switchover completed.
     */
    public static List<String> verifyContinuation(BlkDriverArea.Progress atSwitchover, BlkDriverArea.Progress now,
                                                  long margin) {
        List<String> problems = new ArrayList<>();
        if (now.completed() < atSwitchover.completed() + margin) {
            problems.add("I/O did not continue: " + now.completed() + " requests completed, " + atSwitchover.completed()
                    + " at switchover");
        }
        if (now.submitted() < atSwitchover.submitted()) {
            problems.add("the driver went back: " + now.submitted() + " submitted, " + atSwitchover.submitted()
                    + " at switchover");
        }
        for (long seq : now.inFlightSeqs()) {
            if (seq != 0 && seq < atSwitchover.nextSeq()) {
                problems.add("request " + seq + ", in flight at switchover, never completed");
            }
        }
        if (now.errors() != 0) {
            problems.add("driver errors: " + now.errors() + " (first code " + now.firstError() + ")");
        }
        return problems;
    }
}
