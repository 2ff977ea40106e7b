package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.vmm.config.VmConfig;
import dev.ferry.vmm.config.VmConfigParser;
import dev.ferry.vmm.qmp.QmpClient;
import dev.ferry.vmm.run.QapiJson;
import dev.ferry.vmm.run.VmmInstance;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code ferry soak}: migrates one guest with every device kind (a virtio-blk disk doing I/O, a
 * virtio-net NIC exchanging frames with a traffic peer, an inflated virtio-balloon with free page
 * hinting, two emulated SR-IOV VFs doing DMA, and — unless {@code --no-vhost-user} — a
 * vhost-user-blk disk and a vhost-user-net NIC served by Ferry's back-end library, one back-end
 * pair per side on the same image and peer) back and forth between VMMs in this process, N times,
 * over one stream or, with {@code --multifd-channels}, multifd. After each hop it checks what the three-hop device test checks — RAM at load equals the
 * source's at switchover, the guest continued exactly, the disk holds every acknowledged write,
 * the peer saw no frame twice and moved the MAC, the balloon kept its size and holes, each VF
 * arrived with its state — then closes the source VMM and samples what the process holds: open
 * fds, threads, heap after a GC, direct buffers. It passes when no hop diverged and, from the
 * warm-up hop on, fds and threads did not grow and heap and direct memory stayed within 32 and
 * 16 MiB. Exit 0 only then.
 */
@Command(name = "soak", mixinStandardHelpOptions = true,
        description = "Migrate a guest with every device kind back and forth N times in one process; check every"
                + " hop and that fds, threads, heap and direct memory do not grow.")
public final class SoakCommand implements Callable<Integer> {
    @Option(names = "--migrations", defaultValue = "100", description = "hops (default ${DEFAULT-VALUE})")
    int migrations;

    @Option(names = "--ram", defaultValue = "64M", description = "guest RAM (default ${DEFAULT-VALUE})")
    String ram;

    @Option(names = "--vhost-user", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "add a vhost-user-blk disk and a vhost-user-net NIC (Ferry's back-ends) (default on)")
    boolean vhostUser;

    @Option(names = "--multifd-channels", defaultValue = "0",
            description = "migrate RAM over this many multifd channels; 0: one stream (default ${DEFAULT-VALUE})")
    int multifdChannels;

    @Option(names = "--json", description = "print exactly one JSON object instead of the lines")
    boolean json;

    private static final String MAC = "52:54:00:00:50:0a";
    private static final String VHOST_MAC = "52:54:00:00:50:0b";
    private static final String VF_FLAGS = "stop-copy,p2p,pre-copy,state=256K,dirty-rate=64K,pps=2000";
    static final long HEAP_SLACK = 32L << 20;
    static final long DIRECT_SLACK = 16L << 20;

    /** What the process held after one hop. */
    record Sample(int hop, long fds, long threads, long heap, long direct, long hopMs, String divergence) {
    }

    @Override
    public Integer call() throws Exception {
        if (migrations < 2) {
            System.err.println("ferry soak: --migrations must be at least 2");
            return 2;
        }
        PrintStream out = json ? new PrintStream(PrintStream.nullOutputStream()) : System.out;
        Path dir = Files.createTempDirectory("ferry-soak");
        List<Sample> samples = new ArrayList<>();
        List<VhostUserBackend> backends = new ArrayList<>();
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            Path image = dir.resolve("disk0.img");
            Path vhostImage = dir.resolve("disk1.img");
            for (Path img : List.of(image, vhostImage)) {
                try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
                    f.setLength(16L << 20);
                }
            }
            if (vhostUser) {
                // Two back-end pairs, one per side: a hop's destination connects to the pair its
                // source does not hold (a back-end serves one front-end at a time).
                for (int side = 0; side < 2; side++) {
                    backends.add(VhostUserBackend.serveBlk(BlkOptions.of(vhostImage),
                            BackendOptions.server(dir.resolve("vub" + side + ".sock"))));
                    backends.add(VhostUserBackend.serveNet(new NetOptions(mac(VHOST_MAC), 256, false),
                            new DgramBackend(new InetSocketAddress("127.0.0.1", 0),
                                    new InetSocketAddress("127.0.0.1", peer.port())),
                            BackendOptions.server(dir.resolve("vun" + side + ".sock"))));
                }
            }
            long ramBytes = dev.ferry.vmm.config.Sizes.parse(ram);
            long target = ramBytes - (4L << 20);
            Vm from = Vm.start(dir, "vm0", config("vm0", 1.0, image, peer.port(), dir, 0), null);
            try {
                from.qmp.execute("balloon", QapiJson.JSON.createObjectNode().put("value", target));
                awaitBalloon(from, target);
                for (int hop = 1; hop <= migrations; hop++) {
                    long t0 = System.nanoTime();
                    String name = "vm" + hop;
                    Vm to = Vm.start(dir, name, config(name, 0.0, image, peer.port(), dir, hop % 2), "defer");
                    String divergence;
                    try {
                        divergence = hop(from, to, peer, target, multifdChannels, vhostUser);
                    } catch (Exception e) {
                        divergence = e.toString();
                    }
                    from.close();
                    from = to;
                    Sample s = sample(hop, (System.nanoTime() - t0) / 1_000_000L, divergence, samples);
                    samples.add(s);
                    out.printf("hop %3d: %s in %d ms; fds %d, threads %d, heap %.1f MiB, direct %.1f MiB%n", hop,
                            divergence == null ? "verified" : "DIVERGED: " + divergence, s.hopMs(), s.fds(),
                            s.threads(), s.heap() / 1048576.0, s.direct() / 1048576.0);
                    if (divergence != null) {
                        break;
                    }
                }
            } finally {
                from.close();
            }
        } finally {
            backends.forEach(VhostUserBackend::close);
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        Verdict v = judge(samples, migrations);
        if (json) {
            System.out.println(json(samples, v).toPrettyString());
        } else {
            out.println(v.summary());
        }
        return v.passed() ? 0 : 1;
    }

    /** The soak's verdict: every hop verified, nothing grew from the warm-up hop on. */
    record Verdict(boolean passed, String summary) {
    }

    static Verdict judge(List<Sample> samples, int asked) {
        if (samples.size() < asked || samples.stream().anyMatch(s -> s.divergence() != null)) {
            return new Verdict(false, "FAIL: " + samples.size() + " of " + asked + " hops ran; "
                    + samples.stream().filter(s -> s.divergence() != null).map(s -> "hop " + s.hop() + ": " + s.divergence())
                    .findFirst().orElse("stopped early"));
        }
        Sample base = samples.get(Math.min(samples.size() - 1, Math.max(1, samples.size() / 10)));
        Sample last = samples.get(samples.size() - 1);
        List<String> grew = new ArrayList<>();
        if (last.fds() > base.fds()) {
            grew.add("fds " + base.fds() + " -> " + last.fds());
        }
        if (last.threads() > base.threads()) {
            grew.add("threads " + base.threads() + " -> " + last.threads());
        }
        if (last.heap() - base.heap() > HEAP_SLACK) {
            grew.add(String.format("heap %.1f -> %.1f MiB", base.heap() / 1048576.0, last.heap() / 1048576.0));
        }
        // Direct memory is Netty's pool: it takes and keeps 4 MiB chunks as its threads need them,
        // so single samples swing by a few chunks. A leak is a rising ceiling: the highest sample
        // of the run's last tenth against the highest of the tenth after the warm-up.
        int window = Math.max(1, samples.size() / 10);
        int from = samples.indexOf(base);
        long earlyCeiling = samples.subList(from, Math.min(samples.size(), from + window)).stream()
                .mapToLong(Sample::direct).max().orElse(0);
        long lateCeiling = samples.subList(Math.max(from, samples.size() - window), samples.size()).stream()
                .mapToLong(Sample::direct).max().orElse(0);
        if (lateCeiling - earlyCeiling > DIRECT_SLACK) {
            grew.add(String.format("direct (highest of %d hops) %.1f -> %.1f MiB", window, earlyCeiling / 1048576.0,
                    lateCeiling / 1048576.0));
        }
        String range = String.format("from hop %d to hop %d: fds %d -> %d, threads %d -> %d, heap %.1f -> %.1f MiB,"
                        + " direct %.1f -> %.1f MiB", base.hop(), last.hop(), base.fds(), last.fds(), base.threads(),
                last.threads(), base.heap() / 1048576.0, last.heap() / 1048576.0, base.direct() / 1048576.0,
                last.direct() / 1048576.0);
        return grew.isEmpty() ? new Verdict(true, "PASS: " + samples.size() + " hops verified, nothing grew " + range)
                : new Verdict(false, "FAIL: grew " + String.join(", ", grew) + " (" + range + ")");
    }

    private static ObjectNode json(List<Sample> samples, Verdict v) {
        ObjectNode o = QapiJson.JSON.createObjectNode();
        o.put("passed", v.passed()).put("summary", v.summary()).put("hops", samples.size());
        ArrayNode a = o.putArray("samples");
        for (Sample s : samples) {
            a.addObject().put("hop", s.hop()).put("ms", s.hopMs()).put("fds", s.fds()).put("threads", s.threads())
                    .put("heap", s.heap()).put("direct", s.direct()).put("divergence", s.divergence());
        }
        return o;
    }

    /** Resources after a GC, waiting up to 2 s for closed threads and sockets to go. */
    private static Sample sample(int hop, long hopMs, String divergence, List<Sample> before) throws Exception {
        long deadline = System.nanoTime() + 2_000_000_000L;
        ObjectNode r;
        do {
            System.gc();
            r = QapiJson.resources();
            if (before.isEmpty() || r.path("fds").asLong() <= before.get(0).fds()
                    && r.path("threads").asLong() <= before.get(0).threads()) {
                break;
            }
            Thread.sleep(50);
        } while (System.nanoTime() < deadline);
        if (!before.isEmpty() && r.path("threads").asLong() > before.get(0).threads()) {
            java.util.List<String> names = new java.util.ArrayList<>();
            Thread.getAllStackTraces().keySet().forEach(t -> names.add(t.getName()));
            java.util.Collections.sort(names);
            org.slf4j.LoggerFactory.getLogger(SoakCommand.class).warn("hop {}: {} threads against {} at the first "
                    + "sample: {}", hop, r.path("threads").asLong(), before.get(0).threads(), names);
        }
        return new Sample(hop, r.path("fds").asLong(), r.path("threads").asLong(), r.path("heap-used").asLong(),
                r.path("direct-bytes").asLong(), hopMs, divergence);
    }

    private static byte[] mac(String text) {
        return NetTraffic.longToMac(Long.parseLong(text.replace(":", ""), 16));
    }

    /** One migration, checked; null when every promise held, else what broke. */
    private static String hop(Vm from, Vm to, TrafficPeer peer, long target, int multifdChannels, boolean vhostUser)
            throws Exception {
        byte[] mac = mac(MAC);
        if (multifdChannels > 0) {
            for (Vm vm : List.of(from, to)) {
                ObjectNode caps = QapiJson.JSON.createObjectNode();
                caps.putArray("capabilities").addObject().put("capability", "multifd").put("state", true);
                vm.qmp.execute("migrate-set-capabilities", caps);
                vm.qmp.execute("migrate-set-parameters", QapiJson.JSON.createObjectNode()
                        .put("multifd-channels", multifdChannels));
            }
        }
        to.qmp.execute("migrate-incoming", QapiJson.JSON.createObjectNode().put("uri", "tcp:127.0.0.1:0"));
        JsonNode a = to.qmp.execute("query-migrate").path("socket-address").path(0);
        String uri = "tcp:" + a.path("host").asText() + ":" + a.path("port").asText();
        String portBefore = peer.flow(mac).port();
        String vhostPortBefore = vhostUser ? peer.flow(mac(VHOST_MAC)).port() : null;
        from.qmp.execute("migrate", QapiJson.JSON.createObjectNode().put("uri", uri));
        JsonNode info = awaitEnd(from);
        if (!info.path("status").asText().equals("completed")) {
            return "migration " + info.path("status").asText() + ": " + info.path("error-desc").asText();
        }
        JsonNode dinfo = awaitEnd(to);
        if (!dinfo.path("status").asText().equals("completed")) {
            return "destination " + dinfo.path("status").asText() + ": " + dinfo.path("error-desc").asText();
        }
        String sourceDigest = from.qmp.execute("x-ferry-memory-digest").path("digest").asText();
        JsonNode fromVerify = from.qmp.execute("x-ferry-verify");
        Thread.sleep(300); // the destination runs: disk I/O, frames, DMA
        JsonNode v = to.qmp.execute("x-ferry-verify");
        if (!sourceDigest.equals(v.path("digest-at-load").asText())) {
            return "RAM at load differs from the source's at switchover";
        }
        if (!v.path("continuation").path("ok").asBoolean()) {
            return "the guest did not continue: " + v.path("continuation");
        }
        int expected = vhostUser ? 2 : 1;
        for (String part : List.of("disks", "nics")) {
            if (v.path(part).size() != expected) {
                return part + ": " + expected + " expected in " + v.path(part);
            }
            for (JsonNode d : v.path(part)) {
                if (!d.path("ok").asBoolean()) {
                    return part + ": " + d;
                }
            }
        }
        TrafficPeer.FlowStats flow = peer.flow(mac);
        if (flow.dupsOrReorders() != 0) {
            return "the peer saw a guest frame twice or out of order: " + flow;
        }
        if (vhostUser) {
            // The vhost-user NIC's frames leave from the other side's back-end now (receive
            // buffers re-offered from the used index may repeat a frame, docs/vhost-user.md, so
            // only the move is checked here; the NIC's own verdict above checks its traffic).
            long deadline = System.nanoTime() + 2_000_000_000L;
            while (peer.flow(mac(VHOST_MAC)).port().equals(vhostPortBefore)) {
                if (System.nanoTime() > deadline) {
                    return "the vhost-user NIC's frames did not come from the destination's back-end";
                }
                Thread.sleep(20);
            }
        }
        if (flow.port().equals(portBefore)) {
            Thread.sleep(1000); // the announce rounds
            if (peer.flow(mac).port().equals(portBefore)) {
                return "the peer did not move the MAC to the destination";
            }
        }
        if (to.qmp.execute("query-balloon").path("actual").asLong() != target
                || !v.path("balloon").path("ok").asBoolean()) {
            return "balloon: " + v.path("balloon");
        }
        JsonNode vfs = to.qmp.execute("x-ferry-vfio").path("devices");
        for (String id : List.of("vf0", "vf1")) {
            JsonNode sv = byId(fromVerify.path("vfs"), id);
            JsonNode dv = byId(v.path("vfs"), id);
            if (!sv.path("state-digest").asText().equals(dv.path("digest-at-load").asText())
                    || !dv.path("ring").path("ok").asBoolean()
                    || !byId(vfs, id).path("device-state").asText().equals("RUNNING")) {
                return id + ": " + dv;
            }
        }
        return null;
    }

    private static JsonNode byId(JsonNode list, String id) {
        for (JsonNode n : list) {
            if (n.path("id").asText().equals(id)) {
                return n;
            }
        }
        return QapiJson.JSON.createObjectNode();
    }

    private static JsonNode awaitEnd(Vm vm) throws Exception {
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        while (true) {
            JsonNode info = vm.qmp.execute("query-migrate");
            String s = info.path("status").asText();
            if (s.equals("completed") || s.equals("failed") || s.equals("cancelled")) {
                return info;
            }
            if (System.nanoTime() > deadline) {
                return info;
            }
            Thread.sleep(10);
        }
    }

    private static void awaitBalloon(Vm vm, long target) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (vm.qmp.execute("query-balloon").path("actual").asLong() != target) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("the balloon did not reach " + target + " bytes");
            }
            Thread.sleep(10);
        }
    }

    private VmConfig config(String name, double populate, Path image, int peerPort, Path dir, int side)
            throws Exception {
        String vhost = !vhostUser ? "" : (",\n    {\"id\": \"disk1\", \"kind\": \"vhost-user-blk\", \"socket\": \"%s\", \"image\": \"%s\"},"
                + "\n    {\"id\": \"net1\", \"kind\": \"vhost-user-net\", \"socket\": \"%s\", \"mac\": \"%s\"}")
                .formatted(dir.resolve("vub" + side + ".sock"), dir.resolve("disk1.img"), dir.resolve("vun" + side + ".sock"),
                        VHOST_MAC);
        return VmConfigParser.parse("""
                {
                  "name": "%s",
                  "memory": { "size": "%s" },
                  "vcpus": 1,
                  "engine": "soft",
                  "workload": { "dirty-rate": "4M", "working-set": "16M", "seed": 11, "populate": %s },
                  "devices": [
                    {"id": "disk0", "kind": "virtio-blk", "image": "%s"},
                    {"id": "net0", "kind": "virtio-net", "mac": "%s", "netdev": "dgram:127.0.0.1:%d"},
                    {"id": "balloon0", "kind": "virtio-balloon"},
                    {"id": "vf0", "kind": "vf", "flags": "%s"},
                    {"id": "vf1", "kind": "vf", "flags": "%s"}%s
                  ]
                }
                """.formatted(name, ram, populate, image, MAC, peerPort, VF_FLAGS, VF_FLAGS, vhost), name + ".json");
    }

    /** A VMM in this process and the QMP client that drives it. */
    private record Vm(VmmInstance instance, QmpClient qmp) implements AutoCloseable {
        static Vm start(Path dir, String name, VmConfig cfg, String incoming) throws Exception {
            VmmInstance i = VmmInstance.start(cfg, dir.resolve(name + ".qmp"), incoming, false, incoming != null);
            try {
                QmpClient c = QmpClient.connect(i.qmpSocket(), Duration.ofSeconds(30));
                c.negotiate();
                return new Vm(i, c);
            } catch (Exception e) {
                i.close();
                throw e;
            }
        }

        @Override
        public void close() {
            qmp.close();
            instance.close();
        }
    }
}
