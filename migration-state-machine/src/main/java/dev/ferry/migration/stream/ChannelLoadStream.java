package dev.ferry.migration.stream;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.transport.MigrationConnection;
import io.netty.buffer.ByteBuf;

import java.io.EOFException;
import java.io.IOException;

/**
 * The destination's input stream over the chunks the transport delivers. Values may straddle
 * chunks; guest pages are copied from the chunk's native memory straight into guest memory. The
 * end of the stream in the middle of a value is an {@link EOFException} that says how far the
 * stream got. Incoming thread only.
 */
public final class ChannelLoadStream implements LoadStream, AutoCloseable {
    private final MigrationConnection connection;
    private ByteBuf chunk;
    private long read;
    private boolean ended;

    public ChannelLoadStream(MigrationConnection connection) {
        this.connection = connection;
    }

    /** The current chunk with at least one readable byte. */
    private ByteBuf current() throws IOException {
        while (chunk == null || !chunk.isReadable()) {
            if (chunk != null) {
                chunk.release();
                chunk = null;
            }
            if (ended) {
                throw new EOFException("migration stream ended after " + read + " bytes");
            }
            ByteBuf next = connection.read();
            if (next == null) {
                ended = true;
                throw new EOFException("migration stream ended after " + read + " bytes");
            }
            chunk = next;
        }
        return chunk;
    }

    @Override
    public int getU8() throws IOException {
        int v = current().readUnsignedByte();
        read++;
        return v;
    }

    @Override
    public int peekU8() throws IOException {
        ByteBuf c = current();
        return c.getUnsignedByte(c.readerIndex());
    }

    @Override
    public int getBe16() throws IOException {
        ByteBuf c = current();
        if (c.readableBytes() >= 2) {
            read += 2;
            return c.readUnsignedShort();
        }
        return getU8() << 8 | getU8();
    }

    @Override
    public int getBe32() throws IOException {
        ByteBuf c = current();
        if (c.readableBytes() >= 4) {
            read += 4;
            return c.readInt();
        }
        return getBe16() << 16 | getBe16();
    }

    @Override
    public long getBe64() throws IOException {
        ByteBuf c = current();
        if (c.readableBytes() >= 8) {
            read += 8;
            return c.readLong();
        }
        return (long) getBe32() << 32 | (getBe32() & 0xffffffffL);
    }

    @Override
    public void getBytes(byte[] dst, int offset, int length) throws IOException {
        while (length > 0) {
            ByteBuf c = current();
            int n = Math.min(length, c.readableBytes());
            c.readBytes(dst, offset, n);
            offset += n;
            length -= n;
            read += n;
        }
    }

    @Override
    public void getNative(long address, long length) throws IOException {
        while (length > 0) {
            ByteBuf c = current();
            int n = (int) Math.min(length, c.readableBytes());
            if (c.hasMemoryAddress()) {
                NativeMemory.copy(c.memoryAddress() + c.readerIndex(), address, n);
                c.skipBytes(n);
            } else {
                throw new IllegalStateException("transport delivered a buffer without a memory address");
            }
            address += n;
            length -= n;
            read += n;
        }
    }

    @Override
    public void skip(long length) throws IOException {
        while (length > 0) {
            ByteBuf c = current();
            int n = (int) Math.min(length, c.readableBytes());
            c.skipBytes(n);
            length -= n;
            read += n;
        }
    }

    /**
     * The connection's socket for direct reads ({@link MigrationConnection#detach}), with the
     * unread rest of the current chunk in front; null when the transport keeps it (then read on
     * through this stream). After a detach this stream holds nothing.
     */
    public dev.ferry.migration.transport.DetachedSocket detach() throws IOException {
        dev.ferry.migration.transport.DetachedSocket s = connection.detach();
        if (s != null && chunk != null) {
            s.prepend(chunk);
            chunk = null;
        }
        return s;
    }

    @Override
    public long bytesRead() {
        return read;
    }

    @Override
    public void close() {
        if (chunk != null) {
            chunk.release();
            chunk = null;
        }
    }
}
