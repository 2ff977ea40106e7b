package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vmm.config.ConfigException;
import dev.ferry.vmm.config.VmConfig;
import dev.ferry.vmm.config.VmConfigParser;
import dev.ferry.vmm.qmp.QmpClient;
import dev.ferry.vmm.qmp.QmpError;
import dev.ferry.vmm.qmp.QmpEvent;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeoutException;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * VMMs in this JVM ({@link VmmInstance#start}), each on its own QMP socket in a test's directory
 * and each with a {@link QmpClient} that has negotiated capabilities — the tests talk to them only
 * through that socket, as {@code ferry migrate} or libvirt would. Guests are small (32 MiB RAM, an
 * 8 MiB working set dirtied at 4 MiB/s by one soft vCPU) so a migration takes a fraction of a second.
 * Closing closes every client, then every VMM.
 */
final class LocalVmms implements AutoCloseable {
    /** Generous upper bound for anything to happen; tests never assert on how long it took. */
    static final Duration WAIT = Duration.ofSeconds(60);
    static final long RAM_BYTES = 32L << 20;

    private final Path dir;
    private final List<Vm> vms = Collections.synchronizedList(new ArrayList<>());

    LocalVmms(Path dir) {
        this.dir = dir;
    }

    /** One VMM and the QMP client that drives it. */
    record Vm(String name, VmmInstance instance, QmpClient qmp) {
        JsonNode run(String command) throws IOException {
            return qmp.execute(command);
        }

        JsonNode run(String command, ObjectNode args) throws IOException {
            return qmp.execute(command, args);
        }

        /** Runs a command that must be refused; returns the error. */
        QmpError refused(String command, ObjectNode args) {
            return assertThrows(QmpError.class, () -> qmp.execute(command, args),
                    () -> name + ": " + command + " " + args + " was accepted");
        }

        /** Runs a command that must be refused with a GenericError saying exactly {@code desc}. */
        void assertRefused(String command, ObjectNode args, String desc) {
            QmpError e = refused(command, args);
            assertEquals(QmpError.GENERIC_ERROR, e.errorClass(), e.toString());
            assertEquals(desc, e.desc(), () -> name + ": " + command + " " + args);
        }

        String runState() throws IOException {
            return run("query-status").path("status").asText();
        }

        void enableEvents() throws IOException {
            run("migrate-set-capabilities", capabilities("events", true));
        }

        /**
         * {@code migrate-incoming} on {@code uri}; returns the URI the source must use (the port
         * actually bound when {@code uri} asked for port 0), read back from query-migrate.
         */
        String listen(String uri) throws IOException {
            run("migrate-incoming", args("uri", uri));
            return boundUri(run("query-migrate"));
        }

        /** Polls query-migrate until the migration reached completed, failed or cancelled. */
        JsonNode awaitMigrationEnd() throws IOException, InterruptedException {
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (true) {
                JsonNode info = run("query-migrate");
                if (Set.of("completed", "failed", "cancelled").contains(info.path("status").asText())) {
                    return info;
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError(name + ": migration did not end within " + WAIT + ": " + info);
                }
                Thread.sleep(10);
            }
        }

        QmpEvent awaitEvent(String event) throws IOException, TimeoutException {
            return qmp.awaitEvent(e -> e.name().equals(event), WAIT);
        }

        QmpEvent awaitMigrationEvent(String status) throws IOException, TimeoutException {
            return qmp.awaitEvent(e -> e.name().equals("MIGRATION") && status.equals(e.dataText("status")), WAIT);
        }

        /** The X-FERRY-HOLD event of the hold point {@code phase}: the migration thread waits there. */
        void awaitHold(String phase) throws IOException, TimeoutException {
            qmp.awaitEvent(e -> e.name().equals("X-FERRY-HOLD") && phase.equals(e.dataText("phase")), WAIT);
        }

        /**
         * Takes the events matching {@code relevant} in the order they arrived, up to and including
         * the first one matching {@code last}.
         */
        List<QmpEvent> takeEventsUntil(Predicate<QmpEvent> relevant, Predicate<QmpEvent> last)
                throws IOException, TimeoutException {
            List<QmpEvent> taken = new ArrayList<>();
            while (true) {
                QmpEvent e = qmp.awaitEvent(relevant.or(last), WAIT);
                taken.add(e);
                if (last.test(e)) {
                    return taken;
                }
            }
        }
    }

    /** The config of a guest; a source and its destination must share the workload's seed and size. */
    static VmConfig config(String name, double populate) throws ConfigException {
        return config(name, populate, "[]");
    }

    /** With {@code devices}, the JSON list of the config's devices. */
    static VmConfig config(String name, double populate, String devices) throws ConfigException {
        return VmConfigParser.parse("""
                {
                  "name": "%s",
                  "memory": { "size": "32M" },
                  "vcpus": 1,
                  "engine": "soft",
                  "workload": { "dirty-rate": "4M", "working-set": "8M", "seed": 7, "populate": %s },
                  "devices": %s
                }
                """.formatted(name, populate, devices), "test.json");
    }

    /** A guest that runs (its working set filled before it starts). */
    Vm source(String name) throws Exception {
        return start(name, null, false, false);
    }

    /** A VMM waiting for {@code migrate-incoming} ({@code -incoming defer}), digesting memory at load. */
    Vm destination(String name, boolean paused) throws Exception {
        return start(name, "defer", paused, true);
    }

    /** The devices list every VM started from now on gets (JSON). */
    String devices = "[]";

    Vm start(String name, String incoming, boolean paused, boolean verifyAtLoad) throws Exception {
        VmmInstance instance = VmmInstance.start(config(name, incoming == null ? 1.0 : 0.0, devices),
                dir.resolve(name + ".qmp"), incoming, paused, verifyAtLoad);
        QmpClient client;
        try {
            client = QmpClient.connect(instance.qmpSocket(), WAIT);
            client.negotiate();
        } catch (IOException | RuntimeException e) {
            instance.close();
            throw e;
        }
        Vm vm = new Vm(name, instance, client);
        vms.add(vm);
        return vm;
    }

    static ObjectNode args(Object... namesAndValues) {
        ObjectNode o = QapiJson.JSON.createObjectNode();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            o.set((String) namesAndValues[i], QapiJson.JSON.valueToTree(namesAndValues[i + 1]));
        }
        return o;
    }

    /** {@code {"capabilities": [{"capability": name, "state": state}, ...]}}. */
    static ObjectNode capabilities(Object... namesAndStates) {
        ObjectNode o = QapiJson.JSON.createObjectNode();
        ArrayNode list = o.putArray("capabilities");
        for (int i = 0; i < namesAndStates.length; i += 2) {
            list.addObject().put("capability", (String) namesAndStates[i]).put("state", (Boolean) namesAndStates[i + 1]);
        }
        return o;
    }

    /** The migration URI a destination listens on, from its query-migrate {@code socket-address}. */
    static String boundUri(JsonNode incomingInfo) {
        JsonNode a = incomingInfo.path("socket-address").path(0);
        return switch (a.path("type").asText()) {
            case "inet" -> "tcp:" + a.path("host").asText() + ":" + a.path("port").asText();
            case "unix" -> "unix:" + a.path("path").asText();
            default -> throw new AssertionError("query-migrate has no socket-address: " + incomingInfo);
        };
    }

    @Override
    public void close() {
        List<Vm> all;
        synchronized (vms) {
            all = new ArrayList<>(vms);
            vms.clear();
        }
        Collections.reverse(all);
        for (Vm vm : all) {
            vm.qmp().close();
        }
        for (Vm vm : all) {
            vm.instance().close();
        }
    }
}
