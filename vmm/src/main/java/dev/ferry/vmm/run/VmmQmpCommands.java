package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.vmm.qmp.QmpArgs;
import dev.ferry.vmm.qmp.QmpCommands;
import dev.ferry.vmm.qmp.QmpError;
import dev.ferry.vmm.qmp.QmpHandler;

import java.util.List;
import java.util.Set;

/**
 * The VMM's QMP commands: argument checking with QEMU's messages ({@code qapi/migration.json}
 * names), then a call into {@link Vmm}. {@code quit} is wired by {@link RunCommand}.
 */
final class VmmQmpCommands {
    /** Capabilities QEMU has that Ferry does not implement: refused when turned on. */
    private static final Set<String> UNSUPPORTED_CAPABILITIES = Set.of("xbzrle", "rdma-pin-all", "zero-blocks",
            "compress", "postcopy-ram", "x-colo", "release-ram", "block", "pause-before-switchover",
            "dirty-bitmaps", "postcopy-blocktime", "late-block-activate", "x-ignore-shared", "validate-uuid",
            "background-snapshot", "zero-copy-send", "postcopy-preempt", "dirty-limit", "mapped-ram");
    private static final List<String> CAPABILITIES = List.of("events", "auto-converge", "return-path",
            "switchover-ack", "multifd");

    private VmmQmpCommands() {
    }

    static QmpCommands bind(Vmm vmm, QmpHandler quit) {
        QmpCommands c = new QmpCommands();
        c.register("quit", Set.of(), quit);
        c.register("query-status", Set.of(), a -> vmm.queryStatus());
        c.register("stop", Set.of(), a -> run(vmm::stop));
        c.register("cont", Set.of(), a -> run(vmm::cont));
        c.register("migrate", Set.of("uri", "blk", "inc", "detach", "resume"), a -> {
            String uri = a.requiredString("uri");
            if (a.optionalBool("blk", false) || a.optionalBool("inc", false)) {
                throw QmpError.generic("Block migration is not supported by Ferry; use shared storage");
            }
            if (a.optionalBool("resume", false)) {
                throw QmpError.generic("Postcopy recovery is not supported by Ferry");
            }
            a.optionalBool("detach", true);
            return run(() -> vmm.migrate(uri));
        });
        c.register("migrate-incoming", Set.of("uri"), a -> {
            String uri = a.requiredString("uri");
            return run(() -> vmm.migrateIncoming(uri, false));
        });
        c.register("migrate_cancel", Set.of(), a -> {
            vmm.migrateCancel();
            return null;
        });
        c.register("query-migrate", Set.of(), a -> vmm.queryMigrate());
        c.register("query-migrate-parameters", Set.of(), a -> {
            com.fasterxml.jackson.databind.node.ObjectNode p = QapiJson.parameters(vmm.parameters());
            vmm.tls.report(p);
            return p;
        });
        c.register("object-add", a -> {
            vmm.tls.objectAdd(a);
            return null;
        });
        c.register("object-del", Set.of("id"), a -> {
            vmm.tls.objectDel(a.requiredString("id"));
            return null;
        });
        c.register("migrate-set-parameters", Set.of("downtime-limit", "max-bandwidth", "cpu-throttle-initial",
                "cpu-throttle-increment", "max-cpu-throttle", "throttle-trigger-threshold",
                "avail-switchover-bandwidth", "tls-creds", "tls-hostname", "tls-authz", "x-heartbeat-timeout", "multifd-channels"), a -> {
            MigrationParameters p = vmm.parameters();
            long downtime = range(a, "downtime-limit", "downtime_limit", p.downtimeLimitMs(), 0, 2_000_000,
                    " milliseconds");
            long bandwidth = range(a, "max-bandwidth", "max_bandwidth", p.maxBandwidth(), 0, Long.MAX_VALUE,
                    " bytes/second");
            int initial = (int) range(a, "cpu-throttle-initial", "cpu_throttle_initial", p.cpuThrottleInitial(), 1, 99, "");
            int increment = (int) range(a, "cpu-throttle-increment", "cpu_throttle_increment", p.cpuThrottleIncrement(),
                    1, 99, "");
            int max = (int) range(a, "max-cpu-throttle", "max_cpu_throttle", p.maxCpuThrottle(), 1, 99, "");
            int trigger = (int) range(a, "throttle-trigger-threshold", "throttle_trigger_threshold",
                    p.throttleTriggerThreshold(), 1, 100, "");
            long avail = range(a, "avail-switchover-bandwidth", "avail_switchover_bandwidth",
                    p.availSwitchoverBandwidth(), 0, Long.MAX_VALUE, " bytes/second");
            long heartbeat = range(a, "x-heartbeat-timeout", "x_heartbeat_timeout", p.heartbeatTimeoutMs(), 1000,
                    3_600_000, " milliseconds");
            int channels = (int) range(a, "multifd-channels", "multifd_channels", p.multifdChannels(), 1, 255, "");
            MigrationParameters next = p.withMultifdChannels(channels).withDowntimeLimitMs(downtime).withMaxBandwidth(bandwidth)
                    .withThrottle(initial, increment, max).withThrottleTriggerThreshold(trigger)
                    .withAvailSwitchoverBandwidth(avail).withHeartbeatTimeoutMs(heartbeat);
            vmm.tls.setParameters(a);
            return run(() -> vmm.setParameters(next));
        });
        c.register("query-migrate-capabilities", Set.of(), a -> QapiJson.capabilities(vmm.capabilities()));
        c.register("migrate-set-capabilities", Set.of("capabilities"), a -> {
            MigrationCapabilities caps = vmm.capabilities();
            for (QmpArgs item : a.requiredObjectList("capabilities")) {
                String name = item.requiredString("capability");
                boolean state = item.requiredBool("state");
                item.checkNoOtherArguments();
                if (UNSUPPORTED_CAPABILITIES.contains(name)) {
                    if (state) {
                        throw QmpError.generic("Capability '" + name + "' is not supported by Ferry");
                    }
                    continue;
                }
                caps = switch (name) {
                    case "events" -> caps.withEvents(state);
                    case "auto-converge" -> caps.withAutoConverge(state);
                    case "return-path" -> caps.withReturnPath(state);
                    case "switchover-ack" -> caps.withSwitchoverAck(state);
                    case "multifd" -> caps.withMultifd(state);
                    default -> throw QmpError.generic("Parameter 'capability' does not accept value '" + name + "'");
                };
            }
            MigrationCapabilities next = caps;
            return run(() -> vmm.setCapabilities(next));
        });
        c.register("x-ferry-hold", Set.of("phase"), a -> {
            String phase = a.requiredString("phase");
            return run(() -> vmm.hold(phase));
        });
        c.register("x-ferry-release", Set.of(), a -> {
            vmm.release();
            return null;
        });
        c.register("x-ferry-guest", Set.of(), a -> vmm.guestInfo());
        c.register("x-ferry-resources", Set.of(), a -> QapiJson.resources());
        c.register("x-ferry-memory-digest", Set.of(), a -> call(vmm::memoryDigest));
        c.register("x-ferry-verify", Set.of(), a -> call(vmm::verify));
        c.register("x-ferry-vfio", Set.of(), a -> vmm.vfioInfo());
        c.register("x-ferry-devices", Set.of(), a -> vmm.devicesInfo());
        c.register("balloon", Set.of("value"), a -> {
            vmm.balloon().balloon(a.requiredLong("value", Long.MIN_VALUE, Long.MAX_VALUE));
            return null;
        });
        c.register("query-balloon", Set.of(), a -> vmm.balloon().query());
        c.register("qom-get", Set.of("path", "property"),
                a -> vmm.balloon().qomGet(a.requiredString("path"), a.requiredString("property")));
        c.register("qom-set", Set.of("path", "property", "value"), a -> {
            vmm.balloon().qomSet(a.requiredString("path"), a.requiredString("property"), a.json().path("value"));
            return null;
        });
        c.register("block_resize", Set.of("device", "size"), a -> {
            vmm.blockResize(a.requiredString("device"), a.requiredLong("size", Long.MIN_VALUE, Long.MAX_VALUE));
            return null;
        });
        c.register("set_link", Set.of("name", "up"), a -> {
            vmm.setLink(a.requiredString("name"), a.requiredBool("up"));
            return null;
        });
        return c;
    }

    /** An optional integer parameter in [min, max], with QEMU's message otherwise. */
    private static long range(QmpArgs a, String name, String qemuName, long current, long min, long max, String unit) {
        if (!a.has(name)) {
            return current;
        }
        JsonNode v = a.json().get(name);
        if (!v.isIntegralNumber()) {
            throw QmpError.generic("Invalid parameter type for '" + name + "', expected: integer");
        }
        if (!v.canConvertToLong() || v.asLong() < min || v.asLong() > max) {
            throw QmpError.generic("Parameter '" + qemuName + "' expects an integer in the range of " + min + " to "
                    + (max == Long.MAX_VALUE ? "18446744073709551615" : String.valueOf(max)) + unit);
        }
        return v.asLong();
    }

    private interface Action {
        void run() throws VmmException;
    }

    private interface Query {
        JsonNode get() throws VmmException;
    }

    private static JsonNode run(Action action) {
        try {
            action.run();
            return null;
        } catch (VmmException e) {
            throw new QmpError(e.errorClass(), e.getMessage());
        }
    }

    private static JsonNode call(Query q) {
        try {
            return q.get();
        } catch (VmmException e) {
            throw new QmpError(e.errorClass(), e.getMessage());
        }
    }
}
