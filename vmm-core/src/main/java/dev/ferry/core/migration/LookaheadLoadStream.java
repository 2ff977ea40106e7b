package dev.ferry.core.migration;

import dev.ferry.core.sys.NativeMemory;

import java.io.EOFException;
import java.io.IOException;
import java.util.Objects;

/**
 * A {@link LoadStream} that can look further ahead than one byte, for telling a subsection header
 * from the bytes of the next field (QEMU peeks into its QEMUFile buffer for this, in
 * {@code vmstate_subsection_load}; {@link LoadStream} only peeks one byte). Bytes looked at beyond
 * the first are taken from the underlying stream and kept here until a read consumes them:
 * <pre>
 *   underlying: |....consumed....|..not yet read..
 *   here:                ^ pending (at most 2 + 255 bytes: 0x05, length, name)
 *   reads:      pending bytes first, then the underlying stream
 * </pre>
 * One is made per outermost {@link VmStateDescription#load} and passed down to nested states, so
 * bytes taken ahead by an element's subsection check are read by the next element's fields. The
 * outermost load checks that none are left over. Used on the incoming thread only.
 */
final class LookaheadLoadStream implements LoadStream {
    /** A subsection header: 0x05, u8 length, the name. */
    static final int MAX_HEADER = 2 + 255;

    private final LoadStream in;
    private final byte[] pending = new byte[MAX_HEADER];
    private int head;
    private int count;

    LookaheadLoadStream(LoadStream in) {
        this.in = Objects.requireNonNull(in);
    }

    /** Bytes taken from the underlying stream and not read yet. */
    int pending() {
        return count;
    }

    /**
     * The byte {@code k} bytes ahead (0 is the next one), or -1 when the stream ends first. Byte 0
     * alone is peeked without taking it from the underlying stream; looking further takes bytes up
     * to {@code k} and keeps them here.
     */
    int peek(int k) throws IOException {
        if (k < count) {
            return pending[head + k] & 0xff;
        }
        if (k == 0) {
            try {
                return in.peekU8();
            } catch (EOFException e) {
                return -1;
            }
        }
        if (k >= MAX_HEADER) {
            throw new IllegalArgumentException("look-ahead of " + k + " bytes");
        }
        if (head + k >= pending.length) {
            System.arraycopy(pending, head, pending, 0, count);
            head = 0;
        }
        while (count <= k) {
            int b;
            try {
                b = in.getU8();
            } catch (EOFException e) {
                return -1;
            }
            pending[head + count++] = (byte) b;
        }
        return pending[head + k] & 0xff;
    }

    @Override
    public int getU8() throws IOException {
        if (count == 0) {
            return in.getU8();
        }
        count--;
        return pending[head++] & 0xff;
    }

    @Override
    public int peekU8() throws IOException {
        return count > 0 ? pending[head] & 0xff : in.peekU8();
    }

    @Override
    public int getBe16() throws IOException {
        return count == 0 ? in.getBe16() : getU8() << 8 | getU8();
    }

    @Override
    public int getBe32() throws IOException {
        return count == 0 ? in.getBe32() : getBe16() << 16 | getBe16();
    }

    @Override
    public long getBe64() throws IOException {
        return count == 0 ? in.getBe64() : (long) getBe32() << 32 | (getBe32() & 0xffff_ffffL);
    }

    @Override
    public void getBytes(byte[] dst, int offset, int length) throws IOException {
        Objects.checkFromIndexSize(offset, length, dst.length);
        int n = Math.min(length, count);
        System.arraycopy(pending, head, dst, offset, n);
        head += n;
        count -= n;
        in.getBytes(dst, offset + n, length - n);
    }

    @Override
    public void getNative(long address, long length) throws IOException {
        if (length < 0) {
            throw new IllegalArgumentException("negative length " + length);
        }
        int n = (int) Math.min(length, count);
        NativeMemory.copyFromArray(pending, head, address, n);
        head += n;
        count -= n;
        in.getNative(address + n, length - n);
    }

    @Override
    public void skip(long length) throws IOException {
        if (length < 0) {
            throw new IllegalArgumentException("negative length " + length);
        }
        int n = (int) Math.min(length, count);
        head += n;
        count -= n;
        in.skip(length - n);
    }

    @Override
    public long bytesRead() {
        return in.bytesRead() - count;
    }
}
