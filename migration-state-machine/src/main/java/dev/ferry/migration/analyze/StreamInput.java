package dev.ferry.migration.analyze;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
import java.nio.charset.StandardCharsets;

/**
 * A forward reader over a stream file that treats every byte as hostile: each read first checks
 * that the file still holds the bytes it needs and otherwise fails with "truncated at offset N
 * while reading X", so nothing ever blocks or allocates by a length read from the file. Skips
 * beyond the buffer move the position without reading, so RAM page payloads cost no copy when
 * they are far apart and at most one buffered read when they are not. All integers big-endian.
 * <pre>
 *   file:    |......consumed......|== buffer ==|.........not yet read.........|
 *                                 ^ bufferStart ^ offset()                    ^ size()
 * </pre>
 * Not thread-safe; one analysis owns it. It never closes the channel.
 */
final class StreamInput {
    static final int BUFFER_SIZE = 256 << 10;

    private final SeekableByteChannel channel;
    private final long size;
    private final ByteBuffer buf = ByteBuffer.allocate(BUFFER_SIZE);
    /** File offset of {@code buf}'s index 0. */
    private long bufferStart;

    StreamInput(SeekableByteChannel channel, long size, long start) {
        this.channel = channel;
        this.size = size;
        this.bufferStart = start;
        buf.limit(0);
    }

    long offset() {
        return bufferStart + buf.position();
    }

    long size() {
        return size;
    }

    long remaining() {
        return size - offset();
    }

    boolean atEnd() {
        return offset() >= size;
    }

    /** Fails unless {@code n} more bytes exist; {@code what} names the item for the message. */
    void require(long n, String what) throws AnalysisException {
        if (n < 0 || n > remaining()) {
            throw AnalysisException.truncated(offset(), what, size);
        }
    }

    int u8(String what) throws IOException, AnalysisException {
        fill(1, what);
        return buf.get() & 0xff;
    }

    int peekU8(String what) throws IOException, AnalysisException {
        fill(1, what);
        return buf.get(buf.position()) & 0xff;
    }

    int be16(String what) throws IOException, AnalysisException {
        fill(2, what);
        return buf.getShort() & 0xffff;
    }

    /** An unsigned be32 (section ids, instance ids, lengths), as a long. */
    long be32(String what) throws IOException, AnalysisException {
        fill(4, what);
        return buf.getInt() & 0xffff_ffffL;
    }

    long be64(String what) throws IOException, AnalysisException {
        fill(8, what);
        return buf.getLong();
    }

    /** {@code n} bytes; callers bound {@code n} (it is at most 255 or a capped preview). */
    byte[] bytes(int n, String what) throws IOException, AnalysisException {
        if (n > BUFFER_SIZE) {
            throw new IllegalArgumentException("read of " + n + " bytes exceeds the buffer");
        }
        fill(n, what);
        byte[] b = new byte[n];
        buf.get(b);
        return b;
    }

    /** Reads {@code n} bytes into {@code dst} from {@code off}, a buffer's worth at a time. */
    void read(byte[] dst, int off, int n, String what) throws IOException, AnalysisException {
        require(n, what);
        while (n > 0) {
            int chunk = Math.min(n, BUFFER_SIZE);
            fill(chunk, what);
            buf.get(dst, off, chunk);
            off += chunk;
            n -= chunk;
        }
    }

    /** A counted string: u8 length (at least {@code min}), then that many bytes, no NUL. */
    String countedString(int min, String what) throws IOException, AnalysisException {
        long at = offset();
        int len = u8(what + " length");
        if (len < min) {
            throw AnalysisException.malformed(at, what + " has length " + len + " at offset " + at);
        }
        // escaped: the report goes to a terminal; printable ASCII (every name QEMU writes) is unchanged
        return dev.ferry.core.migration.StreamText.escape(bytes(len, what), len, 255);
    }

    void skip(long n, String what) throws AnalysisException {
        require(n, what);
        if (n <= buf.remaining()) {
            buf.position(buf.position() + (int) n);
        } else {
            bufferStart = offset() + n;
            buf.clear().limit(0);
        }
    }

    /** Makes {@code n} bytes available in the buffer, reading more of the file if needed. */
    private void fill(int n, String what) throws IOException, AnalysisException {
        if (buf.remaining() >= n) {
            return;
        }
        require(n, what);
        bufferStart += buf.position();
        buf.compact();
        channel.position(bufferStart + buf.position());
        while (buf.position() < n) {
            int r = channel.read(buf);
            if (r < 0) {
                buf.flip();
                throw AnalysisException.truncated(offset(), what + " (the file shrank while it was read)", size);
            }
        }
        buf.flip();
    }
}
