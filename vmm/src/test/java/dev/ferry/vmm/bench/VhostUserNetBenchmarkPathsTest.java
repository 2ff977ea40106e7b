package dev.ferry.vmm.bench;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every configuration of {@link VhostUserNetBenchmark} moves a batch of frames on every flow and
 * tears down with no guest error, duplicate or misdelivery (its tear-down checks them). No timing
 * here; the numbers come from the benchmark.
 */
@Timeout(120)
class VhostUserNetBenchmarkPathsTest {
    private static long oneBatch(int pairs, String model) throws Exception {
        VhostUserNetBenchmark b = new VhostUserNetBenchmark();
        b.pairs = pairs;
        b.model = model;
        b.start();
        try {
            return b.frames();
        } finally {
            b.stop();
        }
    }

    @Test
    void bothModelsMoveFramesOnEveryPair() throws Exception {
        for (int pairs : new int[] {1, 2}) {
            for (String model : new String[] {"default", "mq"}) {
                assertTrue(oneBatch(pairs, model) >= VhostUserNetBenchmark.BATCH, pairs + " " + model);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> oneBatch(1, "tap"));
    }
}
