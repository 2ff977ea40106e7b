package dev.ferry.migration.stream;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.testing.MemoryConnection;
import dev.ferry.migration.testing.StreamBytes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.EOFException;
import java.io.IOException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ChannelSaveStream} and {@link ChannelLoadStream} over a {@link MemoryConnection}: values
 * come back whatever the chunking, including values and native copies that straddle chunk borders,
 * and the end of the stream is an {@link EOFException} that says how far the stream got.
 */
class ChannelStreamsTest {
    private static final int NATIVE_LENGTH = 10_000;

    private static byte[] nativePattern() {
        byte[] b = new byte[NATIVE_LENGTH];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (i * 31 + 1);
        }
        return b;
    }

    /** u8, be16, be32, be64, bytes, native, 5 skipped bytes, u8 — and what they look like on the wire. */
    private static byte[] expectedWire() {
        return new StreamBytes().u8(0xab).be16(0xfedc).be32(0x89abcdef).be64(0x0123456789abcdefL)
                .bytes(new byte[] {1, 2, 3}).bytes(nativePattern()).bytes(new byte[] {9, 9, 9, 9, 9}).u8(0x7e)
                .toByteArray();
    }

    @Test
    void saveStreamWritesBigEndianValuesAndNativeMemory() throws IOException {
        MemoryConnection c = new MemoryConnection("out", new byte[0], 1, false);
        BandwidthLimiter unlimited = new BandwidthLimiter(0, System::nanoTime);
        long mem = NativeMemory.allocate(NATIVE_LENGTH);
        try (ChannelSaveStream out = new ChannelSaveStream(c, unlimited)) {
            NativeMemory.copyFromArray(nativePattern(), 0, mem, NATIVE_LENGTH);
            out.putU8(0xab);
            out.putBe16(0xfedc);
            out.putBe32(0x89abcdef);
            out.putBe64(0x0123456789abcdefL);
            out.putBytes(new byte[] {1, 2, 3});
            out.putNative(mem, NATIVE_LENGTH);
            out.putBytes(new byte[] {9, 9, 9, 9, 9});
            out.putU8(0x7e);
            assertEquals(0, c.writes(), "nothing is sent before a chunk fills or a flush");
            out.flush();
            assertEquals(expectedWire().length, out.bytesWritten());
        } finally {
            NativeMemory.free(mem);
        }
        assertArrayEquals(expectedWire(), c.writtenBytes());
        assertEquals(1, c.flushes());
    }

    @ParameterizedTest(name = "{0}-byte chunks")
    @ValueSource(ints = {1, 2, 3, 5, 7, 8, 13, 4096, 1 << 20})
    void loadStreamReadsValuesStraddlingChunks(int chunk) throws IOException {
        byte[] wire = expectedWire();
        MemoryConnection c = new MemoryConnection("in", wire, chunk, false);
        long mem = NativeMemory.allocate(NATIVE_LENGTH);
        try (ChannelLoadStream in = new ChannelLoadStream(c)) {
            assertEquals(0xab, in.peekU8());
            assertEquals(0xab, in.getU8());
            assertEquals(0xfedc, in.getBe16());
            assertEquals(0x89abcdef, in.getBe32());
            assertEquals(0x0123456789abcdefL, in.getBe64());
            byte[] three = new byte[3];
            in.getBytes(three, 0, 3);
            assertArrayEquals(new byte[] {1, 2, 3}, three);
            in.getNative(mem, NATIVE_LENGTH);
            byte[] back = new byte[NATIVE_LENGTH];
            NativeMemory.copyToArray(mem, back, 0, NATIVE_LENGTH);
            assertArrayEquals(nativePattern(), back);
            in.skip(5);
            assertEquals(0x7e, in.getU8());
            assertEquals(wire.length, in.bytesRead());
            EOFException e = assertThrows(EOFException.class, in::getU8);
            assertTrue(e.getMessage().contains("ended after " + wire.length + " bytes"), e.getMessage());
        } finally {
            NativeMemory.free(mem);
        }
        assertEquals(0, c.unreleasedChunks(), "the load stream releases every chunk it read");
    }

    @ParameterizedTest(name = "{0}-byte chunks")
    @ValueSource(ints = {1, 3, 64})
    void aValueCutByTheEndOfTheStreamIsAnEofThatCountsWhatWasRead(int chunk) throws IOException {
        MemoryConnection c = new MemoryConnection("in", new byte[] {0x11, 0x22, 0x33, 0x44, 0x55}, chunk, false);
        try (ChannelLoadStream in = new ChannelLoadStream(c)) {
            assertEquals(0x11, in.getU8());
            EOFException e = assertThrows(EOFException.class, in::getBe64);
            assertTrue(e.getMessage().contains("ended after 5 bytes"), e.getMessage());
            assertThrows(EOFException.class, in::peekU8, "and it stays ended");
        }
        assertEquals(0, c.unreleasedChunks());
    }
    /**
     * An iteration that had almost nothing to send flushes a few bytes: they leave in a buffer of
     * their size and the 256 KiB chunk stays for the next writes. The transport's backpressure
     * counts queued bytes, so handing over a whole chunk per tiny flush let a spinning migration
     * queue gigabytes of mostly empty buffers.
     */
    @Test
    void tinyFlushesHandOverSmallBuffersAndKeepTheChunk() throws IOException {
        MemoryConnection c = new MemoryConnection("out", new byte[0], 1, false);
        java.util.List<Integer> capacities = new java.util.ArrayList<>();
        dev.ferry.migration.transport.MigrationConnection recording = new dev.ferry.migration.transport.MigrationConnection() {
            @Override
            public io.netty.buffer.ByteBufAllocator alloc() {
                return c.alloc();
            }

            @Override
            public void write(io.netty.buffer.ByteBuf buf) throws IOException {
                capacities.add(buf.capacity());
                c.write(buf);
            }

            @Override
            public void flush() throws IOException {
                c.flush();
            }

            @Override
            public void drain() throws IOException {
                c.drain();
            }

            @Override
            public io.netty.buffer.ByteBuf read() throws IOException {
                return c.read();
            }

            @Override
            public boolean peerGone() {
                return false;
            }

            @Override
            public boolean hasReturnPath() {
                return false;
            }

            @Override
            public String description() {
                return "recording";
            }

            @Override
            public void close() {
                c.close();
            }
        };
        StreamBytes want = new StreamBytes();
        try (ChannelSaveStream out = new ChannelSaveStream(recording, new BandwidthLimiter(0, System::nanoTime))) {
            for (int i = 0; i < 1000; i++) {
                out.putBe32(i);
                want.be32(i);
                out.flush();
            }
            byte[] big = new byte[ChannelSaveStream.CHUNK_SIZE + 5];
            java.util.Arrays.fill(big, (byte) 7);
            out.putBytes(big);
            want.bytes(big);
            out.flush();
        }
        assertArrayEquals(want.toByteArray(), c.writtenBytes());
        assertEquals(1002, capacities.size());
        assertTrue(capacities.subList(0, 1000).stream().allMatch(cap -> cap < ChannelSaveStream.SMALL_FLUSH),
                capacities.subList(0, 10)::toString);
        assertEquals(ChannelSaveStream.CHUNK_SIZE, capacities.get(1000), "a full chunk goes as it is");
    }
}
