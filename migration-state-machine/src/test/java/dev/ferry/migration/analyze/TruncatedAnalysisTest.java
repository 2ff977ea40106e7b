package dev.ferry.migration.analyze;

import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Every prefix of a real Ferry stream is analyzed: each one fails with a clear message — "not a
 * migration stream" for the first bytes, "truncated at offset N while reading X" after — except
 * the one prefix that ends exactly after EOF, which is a valid stream without vmdesc. And random
 * corruption of the stream never yields anything but a result or an {@link AnalysisException}.
 */
@Timeout(20)
class TruncatedAnalysisTest {
    private static byte[] stream;

    @BeforeAll
    static void saveSmallVm() throws Exception {
        try (TestVm vm = TestVm.builder("src").region("pc.ram", 0, 16 << 10).region("pc.bios", 0x100000, 8 << 10)
                .running().device(TestDevice.sample()).build()) {
            vm.writePage(1, filled((byte) 0x77));
            vm.writePage(0x100000 / TestVm.PAGE + 1, filled((byte) 0x33));
            stream = InMemoryMigration.save(vm.machine());
        }
    }

    private static byte[] filled(byte b) {
        byte[] p = new byte[TestVm.PAGE];
        java.util.Arrays.fill(p, b);
        return p;
    }

    private static StreamAnalysis analyze(byte[] data, int length) throws Exception {
        return StreamAnalyzer.analyze(new ByteArrayChannel(data, length), "prefix", StreamAnalyzer.Options.withPageRuns());
    }

    @Test
    void everyPrefixFailsWithAClearMessageExceptTheOneEndingAtEof() throws Exception {
        StreamAnalysis whole = analyze(stream, stream.length);
        int eofEnd = (int) whole.eofOffset() + 1;
        int failures = 0;
        for (int len = 0; len < stream.length; len++) {
            try {
                StreamAnalysis a = analyze(stream, len);
                assertEquals(eofEnd, len, "only the prefix up to EOF is a complete stream, but " + len + " bytes analyzed");
                assertNull(a.vmdesc());
            } catch (AnalysisException e) {
                failures++;
                String m = e.getMessage();
                if (len < 4) {
                    assertEquals(AnalysisException.Kind.NOT_A_STREAM, e.kind(), m);
                    assertTrue(m.startsWith("not a migration stream: "), m);
                } else {
                    assertEquals(AnalysisException.Kind.TRUNCATED, e.kind(), len + ": " + m);
                    assertTrue(m.startsWith("truncated at offset " + e.offset() + " while reading "), m);
                    assertTrue(m.endsWith("(the file ends at offset " + len + ")"), m);
                    assertTrue(e.offset() <= len, m);
                }
            }
        }
        assertEquals(stream.length - 1, failures);
    }

    @Test
    void randomCorruptionGivesAResultOrAnAnalysisExceptionNeverAnythingElse() {
        SplittableRandom rnd = new SplittableRandom(2026);
        int errors = 0;
        for (int round = 0; round < 3000; round++) {
            byte[] bad = stream.clone();
            int flips = 1 + rnd.nextInt(4);
            for (int i = 0; i < flips; i++) {
                // Mostly the framing and the vmdesc, where a flip changes the structure.
                int at = rnd.nextInt(4) == 0 ? rnd.nextInt(bad.length) : bad.length - 1 - rnd.nextInt(Math.min(700, bad.length));
                bad[at] = (byte) rnd.nextInt(256);
            }
            try {
                analyze(bad, bad.length);
            } catch (AnalysisException e) {
                errors++;
                assertTrue(e.getMessage() != null && !e.getMessage().isBlank());
            } catch (Exception | StackOverflowError | OutOfMemoryError e) {
                fail("round " + round + ": " + e, e);
            }
        }
        assertTrue(errors > 0, "corruption was never noticed");
    }
}
