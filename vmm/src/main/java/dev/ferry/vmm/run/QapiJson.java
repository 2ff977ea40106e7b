package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.migration.DeviceStats;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;

/**
 * Ferry's migration records as QEMU's QAPI JSON ({@code qapi/migration.json} member names), plus
 * Ferry's own members under the {@code x-ferry-} prefix, as QEMU names its experimental ones.
 */
public final class QapiJson {
    public static final ObjectMapper JSON = new ObjectMapper();

    private QapiJson() {
    }

    /**
     * {@code query-migrate}: {} before any migration; otherwise the members QEMU shows for the
     * status (times, ram, downtime once completed, error-desc once failed).
     */
    public static ObjectNode migrationInfo(MigrationInfo i, boolean incoming, String socketAddressUri) {
        ObjectNode o = JSON.createObjectNode();
        if (i == null || i.status() == MigrationStatus.NONE) {
            return o;
        }
        o.put("status", i.status().qapiName());
        if (socketAddressUri != null) {
            o.set("socket-address", socketAddress(socketAddressUri));
        }
        if (!incoming) {
            o.put("total-time", i.totalTimeMs());
            o.put("setup-time", i.setupTimeMs());
            if (i.status() == MigrationStatus.COMPLETED) {
                o.put("downtime", i.downtimeMs());
                if (i.breakdown() != null) {
                    o.put("x-ferry-guest-pause", i.breakdown().guestPauseNanos() / 1_000_000);
                    ObjectNode b = o.putObject("x-ferry-downtime-breakdown");
                    i.breakdown().phasesMicros().forEach((k, v) -> b.put(k + "-us", v));
                }
                o.put("x-ferry-catch-up-round-bytes", i.catchUpRoundBytes());
            } else if (!i.status().isFinal()) {
                o.put("expected-downtime", i.expectedDowntimeMs());
            }
            if (i.cpuThrottlePercentage() > 0) {
                o.put("cpu-throttle-percentage", i.cpuThrottlePercentage());
            }
        }
        MigrationInfo.Ram r = i.ram();
        ObjectNode ram = o.putObject("ram");
        ram.put("transferred", r.transferred());
        ram.put("remaining", r.remaining());
        ram.put("total", r.total());
        ram.put("duplicate", r.duplicate());
        ram.put("skipped", 0);
        ram.put("normal", r.normal());
        ram.put("normal-bytes", r.normalBytes());
        ram.put("dirty-pages-rate", r.dirtyPagesRate());
        ram.put("mbps", r.mbps());
        ram.put("dirty-sync-count", r.dirtySyncCount());
        ram.put("postcopy-requests", 0);
        ram.put("page-size", r.pageSize());
        ram.put("multifd-bytes", r.multifdBytes());
        ram.put("pages-per-second", r.pagesPerSecond());
        ram.put("precopy-bytes", r.precopyBytes());
        ram.put("downtime-bytes", r.downtimeBytes());
        ram.put("postcopy-bytes", 0);
        if (i.errorDesc() != null && i.status().isFinal()) {
            o.put("error-desc", i.errorDesc());
        }
        if (!i.devices().isEmpty()) {
            ArrayNode devs = o.putArray("x-ferry-devices");
            for (DeviceStats d : i.devices()) {
                ObjectNode dn = devs.addObject();
                dn.put("id", d.idstr());
                dn.put("instance-id", d.instanceId());
                dn.put("precopy-bytes", d.precopyBytes());
                dn.put("downtime-bytes", d.downtimeBytes());
                dn.put("downtime-us", d.downtimeNanos() / 1000);
            }
        }
        return o;
    }

    private static ArrayNode socketAddress(String uri) {
        ArrayNode a = JSON.createArrayNode();
        ObjectNode s = a.addObject();
        if (uri.startsWith("tcp:")) {
            String hp = uri.substring(4);
            int colon = hp.lastIndexOf(':');
            s.put("type", "inet");
            s.put("host", hp.substring(0, colon));
            s.put("port", hp.substring(colon + 1));
        } else if (uri.startsWith("unix:")) {
            s.put("type", "unix");
            s.put("path", uri.substring(5));
        }
        return a;
    }

    public static ObjectNode parameters(MigrationParameters p) {
        ObjectNode o = JSON.createObjectNode();
        o.put("downtime-limit", p.downtimeLimitMs());
        o.put("max-bandwidth", p.maxBandwidth());
        o.put("cpu-throttle-initial", p.cpuThrottleInitial());
        o.put("cpu-throttle-increment", p.cpuThrottleIncrement());
        o.put("max-cpu-throttle", p.maxCpuThrottle());
        o.put("throttle-trigger-threshold", p.throttleTriggerThreshold());
        o.put("avail-switchover-bandwidth", p.availSwitchoverBandwidth());
        o.put("x-heartbeat-timeout", p.heartbeatTimeoutMs());
        o.put("multifd-channels", p.multifdChannels());
        return o;
    }

    public static ArrayNode capabilities(MigrationCapabilities c) {
        ArrayNode a = JSON.createArrayNode();
        a.addObject().put("capability", "events").put("state", c.events());
        a.addObject().put("capability", "auto-converge").put("state", c.autoConverge());
        a.addObject().put("capability", "return-path").put("state", c.returnPath());
        a.addObject().put("capability", "switchover-ack").put("state", c.switchoverAck());
        a.addObject().put("capability", "multifd").put("state", c.multifd());
        return a;
    }

    /**
     * {@code x-ferry-resources}: what this process holds now — open fds, live threads, heap in use,
     * direct buffers — for the fault matrix and soak runs, which check none of it grows.
     */
    public static ObjectNode resources() {
        ObjectNode o = JSON.createObjectNode();
        String[] fds = new java.io.File("/proc/self/fd").list();
        o.put("fds", fds == null ? -1 : fds.length - 1); // without the listing's own fd
        o.put("threads", java.lang.management.ManagementFactory.getThreadMXBean().getThreadCount());
        o.put("heap-used", java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
        long direct = 0;
        for (var pool : java.lang.management.ManagementFactory.getPlatformMXBeans(
                java.lang.management.BufferPoolMXBean.class)) {
            if (pool.getName().equals("direct")) {
                direct = pool.getMemoryUsed();
            }
        }
        o.put("direct-bytes", direct);
        return o;
    }
}
