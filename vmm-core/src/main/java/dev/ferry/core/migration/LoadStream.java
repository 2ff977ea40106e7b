package dev.ferry.core.migration;

import java.io.IOException;

/**
 * What a load handler reads its section data from (QEMU's QEMUFile, input side). All integers
 * are big-endian. The input is hostile: a read past the end of the stream is a
 * {@link java.io.EOFException}, never a hang; handlers check every length they read against
 * their own limits before using it. Used on the incoming thread only.
 */
public interface LoadStream {
    int getU8() throws IOException;

    int peekU8() throws IOException;

    int getBe16() throws IOException;

    int getBe32() throws IOException;

    long getBe64() throws IOException;

    void getBytes(byte[] dst, int offset, int length) throws IOException;

    /** Reads {@code length} bytes straight into native memory (guest pages), no heap copy. */
    void getNative(long address, long length) throws IOException;

    void skip(long length) throws IOException;

    long bytesRead();
}
