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
    void ferrysBackEndPathsRunWithAndWithoutTheInflightRegion() throws Exception {
        oneBatchOfEach("ferry-backend");
        oneBatchOfEach("ferry-backend-inflight");
    }

    @Test
    void aLoadAskingForAnInflightRegionRefusesABackEndWithout() throws Exception {
        Assumptions.assumeTrue(StorageDaemonProcess.installed(), "qemu-storage-daemon not installed: apt-get install"
                + " qemu-system-common");
        java.nio.file.Path img = RawImageFile.create(java.nio.file.Path.of(System.getProperty("java.io.tmpdir")),
                "ferry-test-vub", 1 << 20, false, 1);
        try (StorageDaemonProcess d = StorageDaemonProcess.start(img)) {
            dev.ferry.vhostuser.proto.VhostUserException e = assertThrows(dev.ferry.vhostuser.proto.VhostUserException.class,
                    () -> dev.ferry.vhostuser.check.VhostUserBlkLoad.connect(d.socket(), 4096, 4, false, true));
            org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("INFLIGHT_SHMFD"), e.getMessage());
        } finally {
            java.nio.file.Files.deleteIfExists(img);
        }
    }

    @Test
    void theBuiltInPathRunsAndAnUnknownPathIsRefused() throws Exception {
        oneBatchOfEach("ring");
        assertThrows(IllegalArgumentException.class, () -> oneBatchOfEach("nvme"));
    }
}
