package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vmm.config.VmConfig;
import dev.ferry.vmm.config.VmConfigParser;
import dev.ferry.vmm.qmp.QmpClient;
import picocli.CommandLine.Command;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code ferry x-cds-train} (hidden): the class-data sharing archive's training run. The launcher
 * runs it once per build with {@code -XX:ArchiveClassesAtExit}, so the archive holds the classes a
 * {@code ferry run} process loads to boot, serve QMP and migrate: two small soft VMs in this
 * process, one migrating to the other over a UNIX socket, driven through their QMP sockets. Exit
 * 0 when the migration completed.
 */
@Command(name = "x-cds-train", hidden = true, description = "Train the class-data sharing archive (used by ./ferry).")
public final class CdsTrainCommand implements Callable<Integer> {
    @Override
    public Integer call() throws Exception {
        Path dir = Files.createTempDirectory("ferry-cds-train");
        try {
            // Each virtio kind the demo runs, so their classes (rings, the state's load, the guest
            // drivers) are in the archive: a fresh destination otherwise loads and verifies them from
            // the jar inside the guest's pause (measured: 10-20 ms for the first virtio device).
            Path image = dir.resolve("disk.img");
            try (var f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
                f.setLength(1 << 20);
            }
            String json = "{\"name\": \"%s\", \"memory\": {\"size\": \"32M\"}, \"engine\": \"soft\","
                    + " \"workload\": {\"dirty-rate\": \"4M\", \"working-set\": \"8M\", \"populate\": %s},"
                    + " \"devices\": [{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": %s},"
                    + " {\"id\": \"balloon0\", \"kind\": \"virtio-balloon\"},"
                    + " {\"id\": \"net0\", \"kind\": \"virtio-net\", \"netdev\": \"dgram:127.0.0.1:%d\"}]}";
            String img = QapiJson.JSON.writeValueAsString(image.toString());
            try (java.net.DatagramSocket sink = new java.net.DatagramSocket(0, java.net.InetAddress.getLoopbackAddress())) {
                int port = sink.getLocalPort();
                VmConfig src = VmConfigParser.parse(String.format(json, "train-source", "1.0", img, port), "train");
                VmConfig dst = VmConfigParser.parse(String.format(json, "train-destination", "0.0", img, port), "train");
                return migrate(src, dst, dir);
            }
        } finally {
            try (Stream<Path> files = Files.list(dir)) {
                files.forEach(p -> p.toFile().delete());
            }
            Files.deleteIfExists(dir);
        }
    }

    private static int migrate(VmConfig src, VmConfig dst, Path dir) throws Exception {
        {
            try (VmmInstance d = VmmInstance.start(dst, dir.resolve("d.qmp"), "unix:" + dir.resolve("m.sock"), false, false);
                 VmmInstance s = VmmInstance.start(src, dir.resolve("s.qmp"), null, false, false);
                 QmpClient sq = QmpClient.connect(dir.resolve("s.qmp"), Duration.ofSeconds(10));
                 QmpClient dq = QmpClient.connect(dir.resolve("d.qmp"), Duration.ofSeconds(10))) {
                sq.negotiate();
                dq.negotiate();
                ObjectNode args = QapiJson.JSON.createObjectNode().put("uri", "unix:" + dir.resolve("m.sock"));
                sq.execute("migrate", args);
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (System.nanoTime() < deadline) {
                    JsonNode info = sq.execute("query-migrate");
                    String status = info.path("status").asText();
                    if (status.equals("completed")) {
                        dq.execute("query-status");
                        return 0;
                    }
                    if (status.equals("failed") || status.equals("cancelled")) {
                        System.err.println("ferry x-cds-train: the training migration " + status + ": "
                                + info.path("error-desc").asText());
                        return 1;
                    }
                    Thread.sleep(20);
                }
                System.err.println("ferry x-cds-train: the training migration did not complete in 60 s");
                return 1;
            }
        }
    }
}
