package dev.ferry.migration.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ferry.migration.analyze.AnalysisException;
import dev.ferry.migration.analyze.ByteArrayChannel;
import dev.ferry.migration.analyze.StreamAnalyzer;

import java.io.IOException;

/**
 * Fuzz target: {@code ferry analyze}'s stream reader. Whatever the bytes, it returns an analysis
 * or throws {@link AnalysisException} with a message — never another exception, a hang or an OOM.
 * Seeds as {@link StreamLoadFuzzTest}'s; {@code JAZZER_FUZZ=1} fuzzes (docs/fuzzing.md).
 */
class StreamAnalyzerFuzzTest {
    @FuzzTest(maxDuration = "30s")
    void analyzerReads(byte[] stream) throws IOException {
        try {
            StreamAnalyzer.analyze(new ByteArrayChannel(stream), "fuzz", StreamAnalyzer.Options.withPageRuns());
        } catch (AnalysisException e) {
            if (e.getMessage() == null || e.getMessage().isBlank()) {
                throw new AssertionError("a refusal without a reason", e);
            }
        }
    }
}
