package dev.ferry.vmm.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Raw disk images for the disk benchmarks, written in full (no holes, so a read hits data and a
 * write overwrites allocated blocks) and synced, so every run starts from the same state: the
 * whole image clean in the page cache, nothing left to write back.
 */
final class RawImageFile {
    private static final int CHUNK = 1 << 20;

    private RawImageFile() {
    }

    /** A new image of {@code bytes} (a multiple of 1 MiB) in {@code dir}: random bytes from {@code seed}, or zeroes. */
    static Path create(Path dir, String prefix, long bytes, boolean random, long seed) throws IOException {
        if (bytes <= 0 || bytes % CHUNK != 0) {
            throw new IllegalArgumentException("image size " + bytes + " is not a positive multiple of 1 MiB");
        }
        Path file = Files.createTempFile(dir, prefix, ".img");
        ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        long x = seed | 1;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            for (long at = 0; at < bytes; at += CHUNK) {
                chunk.clear();
                while (chunk.hasRemaining()) {
                    if (random) {
                        x ^= x << 13;
                        x ^= x >>> 7;
                        x ^= x << 17;
                    }
                    chunk.putLong(random ? x : 0);
                }
                chunk.flip();
                while (chunk.hasRemaining()) {
                    ch.write(chunk, at + chunk.position());
                }
            }
            ch.force(true);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(file);
            throw e;
        }
        return file;
    }
}
