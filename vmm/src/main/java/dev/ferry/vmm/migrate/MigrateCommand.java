package dev.ferry.vmm.migrate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vmm.qmp.QmpClient;
import dev.ferry.vmm.qmp.QmpError;
import dev.ferry.vmm.run.QapiJson;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * {@code ferry migrate --qmp SRC.sock --to URI}: starts a migration on a running VMM through QMP,
 * shows its progress, prints the final report. Exit 0 only when the migration completed.
 */
@Command(name = "migrate", mixinStandardHelpOptions = true,
        description = "Migrate the VM of a running Ferry VMM (through its QMP socket) to URI.")
public final class MigrateCommand implements Callable<Integer> {
    @Option(names = "--qmp", required = true, description = "the source VMM's QMP socket")
    Path qmp;

    @Option(names = "--to", required = true, description = "destination URI: tcp:HOST:PORT, unix:PATH or file:PATH")
    String to;

    @Option(names = "--downtime-limit", description = "ms")
    Long downtimeLimit;

    @Option(names = "--max-bandwidth", description = "bytes/s (0 = unlimited)")
    Long maxBandwidth;

    @Option(names = "--auto-converge", description = "turn on auto-converge")
    boolean autoConverge;

    @Option(names = "--timeout", defaultValue = "3600", description = "seconds (default ${DEFAULT-VALUE})")
    long timeoutSeconds;

    @Override
    public Integer call() throws Exception {
        try (QmpClient c = QmpClient.connect(qmp, Duration.ofSeconds(10))) {
            c.negotiate();
            ObjectNode p = QapiJson.JSON.createObjectNode();
            if (downtimeLimit != null) {
                p.put("downtime-limit", downtimeLimit);
            }
            if (maxBandwidth != null) {
                p.put("max-bandwidth", maxBandwidth);
            }
            if (p.size() > 0) {
                c.execute("migrate-set-parameters", p);
            }
            if (autoConverge) {
                ObjectNode caps = QapiJson.JSON.createObjectNode();
                caps.putArray("capabilities").addObject().put("capability", "auto-converge").put("state", true);
                c.execute("migrate-set-capabilities", caps);
            }
            c.execute("migrate", QapiJson.JSON.createObjectNode().put("uri", to));
            JsonNode info = MigrationProgress.follow(c, System.out, Duration.ofSeconds(timeoutSeconds), i -> { });
            System.out.println();
            MigrationProgress.report(info, System.out);
            return info.path("status").asText().equals("completed") ? 0 : 1;
        } catch (QmpError e) {
            System.err.println("ferry migrate: " + e.getMessage());
            return 1;
        }
    }
}
