package dev.ferry.virtio.queue;

import java.util.List;

/**
 * A position within a list of segments, walked piece by piece; shared by {@link ChainReader} and
 * {@link ChainWriter}. Not thread-safe: one cursor belongs to one request on one thread.
 */
final class SegmentCursor {
    /** Pieces are cut at 1 GiB so that each fits an {@code int} length. */
    private static final long MAX_PIECE = 1L << 30;

    private final List<Segment> segments;
    private final long total;
    private int index;
    private long offset;
    private long position;

    SegmentCursor(List<Segment> segments, long total) {
        this.segments = segments;
        this.total = total;
    }

    long total() {
        return total;
    }

    long position() {
        return position;
    }

    long remaining() {
        return total - position;
    }

    /**
     * Hands up to {@code n} bytes from the current position to {@code op}, one piece per segment
     * (or per GiB), and advances by what {@code op} moved. Returns the bytes moved.
     */
    long advance(long n, SegmentTransfer op) {
        if (n < 0) {
            throw new IllegalArgumentException("negative length " + n);
        }
        long want = Math.min(n, remaining());
        long done = 0;
        while (done < want) {
            Segment s = segments.get(index);
            int piece = (int) Math.min(Math.min(s.length() - offset, want - done), MAX_PIECE);
            long moved = op.transfer(s.gpa() + offset, piece, done);
            if (moved < 0 || moved > piece) {
                throw new IllegalStateException("transfer moved " + moved + " bytes of a " + piece + "-byte piece");
            }
            step(moved);
            done += moved;
            if (moved < piece) {
                break;
            }
        }
        return done;
    }

    private void step(long n) {
        position += n;
        offset += n;
        while (index < segments.size() && offset == segments.get(index).length()) {
            index++;
            offset = 0;
        }
    }
}
