package dev.ferry.migration.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ferry.migration.analyze.AnalysisException;
import dev.ferry.migration.analyze.StreamAnalyzer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.NonWritableChannelException;
import java.nio.channels.SeekableByteChannel;

/**
 * Fuzz target: {@code ferry analyze}'s stream reader. Whatever the bytes, it returns an analysis
 * or throws {@link AnalysisException} with a message — never another exception, a hang or an OOM.
 * Seeds as {@link StreamLoadFuzzTest}'s; {@code JAZZER_FUZZ=1} fuzzes (docs/fuzzing.md).
 */
class StreamAnalyzerFuzzTest {
    @FuzzTest(maxDuration = "30s")
    void analyzerReads(byte[] stream) throws IOException {
        try {
            StreamAnalyzer.analyze(new Bytes(stream), "fuzz", StreamAnalyzer.Options.withPageRuns());
        } catch (AnalysisException e) {
            if (e.getMessage() == null || e.getMessage().isBlank()) {
                throw new AssertionError("a refusal without a reason", e);
            }
        }
    }

    /** A read-only in-memory channel, what a file of these bytes would be. */
    static final class Bytes implements SeekableByteChannel {
        private final byte[] data;
        private long position;
        private boolean open = true;

        Bytes(byte[] data) {
            this.data = data;
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (!open) {
                throw new ClosedChannelException();
            }
            if (position >= data.length) {
                return -1;
            }
            int n = (int) Math.min(dst.remaining(), data.length - position);
            dst.put(data, (int) position, n);
            position += n;
            return n;
        }

        @Override
        public int write(ByteBuffer src) {
            throw new NonWritableChannelException();
        }

        @Override
        public long position() {
            return position;
        }

        @Override
        public SeekableByteChannel position(long p) {
            if (p < 0) {
                throw new IllegalArgumentException("negative position");
            }
            position = p;
            return this;
        }

        @Override
        public long size() {
            return data.length;
        }

        @Override
        public SeekableByteChannel truncate(long size) {
            throw new NonWritableChannelException();
        }

        @Override
        public boolean isOpen() {
            return open;
        }

        @Override
        public void close() {
            open = false;
        }
    }
}
