package dev.ferry.vmm.bench;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Every path of {@code ferry bench vhost-user-blk} runs each of its workloads to completion: the
 * daemon's path with and without logging (every request's status checked by the load generator),
 * and the built-in disk. No timing here; the numbers come from the benchmark.
 */
@Timeout(120)
class VhostUserBlkBenchmarkPathsTest {
    private static void oneBatchOfEach(String path) throws Exception {
        VhostUserBlkBenchmark b = new VhostUserBlkBenchmark();
        b.path = path;
        b.depth = 32;
        b.start();
        try {
            b.randomRead4k();
            b.randomWrite4k();
            b.sequentialRead64k();
            b.sequentialWrite64k();
        } finally {
            b.stop();
        }
    }

    @Test
    void theDaemonsPathsRunWithAndWithoutLogging() throws Exception {
        Assumptions.assumeTrue(StorageDaemonProcess.installed(), "qemu-storage-daemon not installed: apt-get install"
                + " qemu-system-common");
        oneBatchOfEach("vhost-user");
        oneBatchOfEach("vhost-user-logged");
    }

    @Test
    void theBuiltInPathRunsAndAnUnknownPathIsRefused() throws Exception {
        oneBatchOfEach("ring");
        assertThrows(IllegalArgumentException.class, () -> oneBatchOfEach("nvme"));
    }
}
