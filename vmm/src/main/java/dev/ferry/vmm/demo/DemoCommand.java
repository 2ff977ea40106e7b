package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.vmm.config.Sizes;
import dev.ferry.vmm.demo.DemoOutcomes.BalloonOutcome;
import dev.ferry.vmm.demo.DemoOutcomes.DiskOutcome;
import dev.ferry.vmm.demo.DemoOutcomes.NicOutcome;
import dev.ferry.vmm.demo.DemoOutcomes.Outcome;
import dev.ferry.vmm.demo.DemoOutcomes.VfOutcome;
import dev.ferry.vmm.migrate.MigrationProgress;
import dev.ferry.vmm.process.FerryRunProcess;
import dev.ferry.vmm.qmp.QmpClient;
import dev.ferry.vmm.run.QapiJson;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

/**
 * {@code ferry demo}: starts a destination VMM process and a source VMM process ({@code ferry run}),
 * lets the source's guest run, migrates it live through QMP with a progress bar, verifies — the
 * destination's RAM equalled the source's at switchover, the guest went on exactly where it
 * stopped — prints a report and stops both processes. With {@code --cancel-at} or
 * {@code --kill-destination-at} it shows the source still running and intact instead.
 * Exit status 0 only when the migration ended as asked and verified.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Live-migrate a running guest between two Ferry VMM processes and verify the result.")
public final class DemoCommand implements Callable<Integer> {
    @Option(names = "--ram", defaultValue = "1G", description = "guest RAM (default ${DEFAULT-VALUE})")
    String ram;

    @Option(names = "--engine", defaultValue = "auto", description = "auto, kvm or soft (default ${DEFAULT-VALUE})")
    String engine;

    @Option(names = "--vcpus", defaultValue = "1",
            description = "vCPUs (default ${DEFAULT-VALUE}; the built-in KVM guest runs on one, the soft engine on any number)")
    int vcpus;

    @Option(names = "--dirty-rate", defaultValue = "50M", description = "bytes/s the guest dirties (default ${DEFAULT-VALUE})")
    String dirtyRate;

    @Option(names = "--working-set", defaultValue = "256M", description = "memory the guest dirties (default ${DEFAULT-VALUE})")
    String workingSet;

    @Option(names = "--downtime-limit", defaultValue = "300", description = "ms (default ${DEFAULT-VALUE})")
    long downtimeLimit;

    @Option(names = "--max-bandwidth", defaultValue = "0", description = "bytes/s, 0 = unlimited (default ${DEFAULT-VALUE})")
    String maxBandwidth;

    @Option(names = "--avail-switchover-bandwidth", defaultValue = "0",
            description = "bytes/s the link gives the switchover, instead of the measured rate (QEMU 8.2's parameter;"
                    + " for devices with much stop-copy state behind quiet RAM; default 0 = measured)")
    String availSwitchoverBandwidth;

    @Option(names = "--auto-converge", description = "throttle the guest when it dirties faster than the link")
    boolean autoConverge;

    @Option(names = "--transport", defaultValue = "tcp", description = "tcp or unix (default ${DEFAULT-VALUE})")
    String transport;

    @Option(names = "--cancel-at", paramLabel = "PHASE", description = "cancel the migration in setup, active or device")
    String cancelAt;

    @Option(names = "--kill-destination-at", paramLabel = "PHASE",
            description = "kill the destination process in setup, active or device")
    String killAt;

    @picocli.CommandLine.Mixin
    DemoFaults faults = new DemoFaults();

    /** For {@code ferry faults}: print nothing and hand the outcome over instead. */
    java.util.function.Consumer<Outcome> outcomes;

    @Option(names = "--vf", paramLabel = "N[:FLAGS]",
            description = "give the guest N emulated SR-IOV NIC VFs, busy with DMA; FLAGS as for `ferry vfio check`"
                    + " (default: stop-copy,p2p,pre-copy), e.g. 2:stop-copy,p2p or 1:state=256M or"
                    + " 1:fault=fail-set:STOP_COPY")
    String vf;

    @Option(names = "--disk", defaultValue = "64M", paramLabel = "SIZE",
            description = "give the guest a virtio-blk disk of SIZE on a temporary image, which its driver writes,"
                    + " reads back and flushes while it runs; 0 = no disk (default ${DEFAULT-VALUE}). The soft"
                    + " engine runs the guest's disk driver; on the KVM engine virtio is not built yet")
    String disk;

    @Option(names = "--nic", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "give the guest a virtio-net NIC joined over a UDP socket to a traffic peer the demo runs;"
                    + " the guest driver and the peer exchange sequence-numbered frames (default on; --no-nic: none;"
                    + " soft engine)")
    boolean nic;

    @Option(names = "--balloon", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "give the guest a virtio-balloon with free page hinting; the demo inflates it by 64 MiB"
                    + " before migrating (default on; --no-balloon: none; soft engine)")
    boolean balloon;

    /** How much the demo inflates the balloon before migrating. */
    static final long BALLOON_INFLATE = 64L << 20;

    @Option(names = "--vhost-user",
            description = "serve the disk and the NIC over vhost-user, each VMM with its own back-ends: the disk by"
                    + " qemu-storage-daemon when installed (two daemons on the shared image), else by Ferry's back-end"
                    + " library; the NIC by Ferry's back-end on UDP to the traffic peer")
    boolean vhostUser;

    @Option(names = "--multifd-channels", defaultValue = "0",
            description = "migrate RAM over this many multifd channels; 0: one stream (default ${DEFAULT-VALUE})")
    int multifdChannels;

    /** The back-ends of --vhost-user, while the demo runs. */
    DemoBackends backends;

    @Option(names = "--json", description = "print exactly one JSON object instead of the report")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (vf != null) {
            try {
                parseVf();
            } catch (IllegalArgumentException e) {
                System.err.println("ferry demo: --vf: " + e.getMessage());
                return 2;
            }
        }
        try {
            diskBytes = Sizes.parse(disk);
        } catch (IllegalArgumentException e) {
            System.err.println("ferry demo: --disk: " + e.getMessage());
            return 2;
        }
        if (diskBytes != 0 && (diskBytes < (1 << 20) || diskBytes % 4096 != 0)) {
            System.err.println("ferry demo: --disk must be 0 or at least 1M, a multiple of 4K");
            return 2;
        }
        if ((diskBytes != 0 || nic || balloon) && engine.equals("kvm")) {
            System.err.println("ferry demo: the KVM engine has no virtio support yet; use --engine soft, or --disk 0,"
                    + " --no-nic and --no-balloon");
            return 2;
        }
        if (!transport.equals("tcp") && !transport.equals("unix")) {
            System.err.println("ferry demo: --transport must be tcp or unix");
            return 2;
        }
        String wrong = faults.check(transport, diskBytes, vhostUser, cancelAt, killAt);
        if (wrong != null) {
            System.err.println("ferry demo: " + wrong);
            return 2;
        }
        PrintStream say = json || outcomes != null ? new PrintStream(PrintStream.nullOutputStream()) : System.out;
        Path dir = Files.createTempDirectory("ferry-demo");
        try {
            if (nic) {
                peer = TrafficPeer.udp(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            }
            return run(dir, say);
        } finally {
            faults.close();
            if (backends != null) {
                backends.close();
            }
            if (peer != null) {
                peer.close();
            }
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** The other end of the guest's NIC: a learning switch that checks the guest's frames and answers them. */
    TrafficPeer peer;
    /** The guest NIC's MAC. */
    static final String NIC_MAC = "52:54:00:12:34:56";

    int vfCount;
    String vfFlags = "";
    long diskBytes;
    Path image;
    /** The destination's image when it must refuse the disk: 1 MiB larger than the source's. */
    Path otherImage;

    private void parseVf() {
        int colon = vf.indexOf(':');
        try {
            vfCount = Integer.parseInt(colon < 0 ? vf : vf.substring(0, colon));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + vf + "' does not start with a number of VFs");
        }
        if (vfCount < 1 || vfCount > 8) {
            throw new IllegalArgumentException("between 1 and 8 VFs, not " + vfCount);
        }
        vfFlags = colon < 0 ? "" : vf.substring(colon + 1);
        dev.ferry.vfio.emulated.EmulatedVfSpec.parse(vfFlags);
    }

    /** Whether a VF was told to fail: then the QEMU outcome (source keeps running) is a success too. */
    boolean faultInjected() {
        return vfFlags.contains("fault=");
    }

    private String config(String name) {
        ObjectNode c = QapiJson.JSON.createObjectNode();
        c.put("name", name);
        boolean refusing = name.equals("destination") && faults.refusing();
        c.putObject("memory").put("size", Sizes.parse(ram) + (refusing && faults.refuses("ram") ? 64L << 20 : 0));
        c.put("vcpus", vcpus);
        c.put("engine", engine);
        c.putObject("workload").put("dirty-rate", Sizes.parse(dirtyRate)).put("working-set", Sizes.parse(workingSet))
                .put("seed", 2026).put("populate", name.equals("source") ? 1.0 : 0.0);
        ArrayNode devices = c.putArray("devices");
        for (int i = 0; i < vfCount; i++) {
            devices.addObject().put("id", "vf" + i).put("kind", "vf").put("flags", vfFlags);
        }
        String side = name.equals("source") ? "source" : "destination";
        if (image != null && backends != null) {
            // The disk's data plane is the back-end's; the VMM knows the image only to verify it.
            devices.addObject().put("id", "disk0").put("kind", "vhost-user-blk")
                    .put("socket", backends.diskSocket(side).toString()).put("image", image.toString());
        } else if (image != null) {
            // Shared storage: both VMMs open the same image; the destination writes it only once it runs.
            devices.addObject().put("id", "disk0").put("kind", "virtio-blk").put("image",
                    (refusing && faults.refuses("disk") ? otherImage : image).toString());
        }
        if (balloon) {
            devices.addObject().put("id", "balloon0").put("kind", "virtio-balloon");
        }
        if (peer != null && backends != null) {
            devices.addObject().put("id", "net0").put("kind", "vhost-user-net").put("mac", NIC_MAC)
                    .put("socket", backends.nicSocket(side).toString());
        } else if (peer != null) {
            // Both VMMs send to the peer from a port of their own; the destination's announce moves the MAC.
            devices.addObject().put("id", "net0").put("kind", "virtio-net").put("mac", NIC_MAC)
                    .put("netdev", "dgram:127.0.0.1:" + peer.port());
        }
        return c.toPrettyString();
    }

    private int run(Path dir, PrintStream say) throws Exception {
        if (diskBytes > 0) {
            image = dir.resolve("disk0.img");
            try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
                f.setLength(diskBytes);
            }
            otherImage = dir.resolve("disk0-larger.img");
            try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(otherImage.toFile(), "rw")) {
                f.setLength(diskBytes + (1 << 20));
            }
        }
        if (vhostUser) {
            backends = DemoBackends.start(dir, image, faults.refuses("disk") ? otherImage : image,
                    dev.ferry.virtio.net.NetOptions.parseMac(NIC_MAC),
                    peer == null ? 0 : peer.port(), say);
        }
        Files.writeString(dir.resolve("source.json"), config("source"));
        Files.writeString(dir.resolve("destination.json"), config("destination"));
        try (FerryRunProcess dst = FerryRunProcess.start("destination", dir, dir.resolve("destination.json"),
                List.of("--incoming", "defer", "--x-verify-at-load"));
             FerryRunProcess src = FerryRunProcess.start("source", dir, dir.resolve("source.json"), List.of())) {
            QmpClient d = dst.qmp();
            QmpClient s = src.qmp();
            String engineName = s.execute("x-ferry-guest", null).path("engine").asText();
            say.printf("source VMM:      %s RAM, %d vCPUs dirtying %s/s over %s (%s engine)%n", ram, vcpus, dirtyRate,
                    workingSet, engineName);
            if (image != null) {
                say.printf("                 a %s virtio-blk disk (shared image %s); the guest writes, reads back and"
                        + " flushes verifiable blocks, %d requests in flight%n", disk, image.getFileName(), 32);
            }
            if (peer != null) {
                say.printf("                 a virtio-net NIC (%s) joined over UDP to the demo's traffic peer at"
                        + " 127.0.0.1:%d; guest and peer exchange sequence-numbered frames%n", NIC_MAC, peer.port());
            }
            if (balloon) {
                say.printf("                 a virtio-balloon with free page hinting; the guest wrote and freed a region"
                        + " it hints during migration%n");
            }
            if (vfCount > 0) {
                say.printf("                 %d emulated SR-IOV NIC VF%s (%s), receiving and DMAing into guest RAM%n",
                        vfCount, vfCount == 1 ? "" : "s", vfFlags.isEmpty() ? "stop-copy,p2p,pre-copy" : vfFlags);
            }

            for (QmpClient c : List.of(s, d)) {
                ObjectNode caps = QapiJson.JSON.createObjectNode();
                ArrayNode list = caps.putArray("capabilities");
                list.addObject().put("capability", "events").put("state", true);
                if (vfCount > 0) {
                    // QEMU's advice for VFIO: the destination acks once a device's initial
                    // pre-copy data is loaded, so the source does not stop the guest before
                    list.addObject().put("capability", "return-path").put("state", true);
                    list.addObject().put("capability", "switchover-ack").put("state", true);
                }
                if (autoConverge && c == s) {
                    list.addObject().put("capability", "auto-converge").put("state", true);
                }
                if (multifdChannels > 0) {
                    list.addObject().put("capability", "multifd").put("state", true);
                }
                c.execute("migrate-set-capabilities", caps);
                if (multifdChannels > 0) {
                    c.execute("migrate-set-parameters", QapiJson.JSON.createObjectNode()
                            .put("multifd-channels", multifdChannels));
                }
            }
            String listen = transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("migration.sock");
            d.execute("migrate-incoming", QapiJson.JSON.createObjectNode().put("uri", listen));
            String uri = boundUri(d.execute("query-migrate", null), listen);
            say.printf("destination VMM: waiting on %s%n", uri);
            ObjectNode params = QapiJson.JSON.createObjectNode().put("downtime-limit", downtimeLimit)
                    .put("max-bandwidth", Sizes.parse(maxBandwidth))
                    .put("avail-switchover-bandwidth", Sizes.parse(availSwitchoverBandwidth));
            if (faults.stalls()) {
                params.put("x-heartbeat-timeout", 2000); // the matrix waits 2 s for a silent network, not 5
            }
            s.execute("migrate-set-parameters", params);
            uri = faults.route(uri, say);
            String phase = cancelAt != null ? cancelAt : killAt != null ? killAt
                    : faults.networkPhase() != null ? faults.networkPhase() : faults.backendPhase();
            if (phase != null) {
                s.execute("x-ferry-hold", QapiJson.JSON.createObjectNode().put("phase", phase));
            }
            Thread.sleep(500); // the guest runs and dirties memory before the migration starts
            if (balloon) {
                inflate(s, say);
            }

            AtomicBoolean acted = new AtomicBoolean();
            List<String> actions = new ArrayList<>();
            s.onEvent(ev -> {
                if (ev.name().equals("X-FERRY-HOLD") && acted.compareAndSet(false, true)) {
                    new Thread(() -> act(s, dst, ev.data().path("phase").asText(), actions), "ferry-demo-act").start();
                }
            });
            long fdsBefore = s.execute("x-ferry-resources", null).path("fds").asLong();
            migrateNanos = System.nanoTime();
            s.execute("migrate", QapiJson.JSON.createObjectNode().put("uri", uri));
            JsonNode info = MigrationProgress.follow(s, json || outcomes != null ? null : System.out,
                    Duration.ofMinutes(30), i -> { });
            say.println();
            actions.forEach(a -> say.println("demo:            " + a));

            Outcome o = verify(s, d, dst, info, say);
            o.fdsBefore = fdsBefore;
            o.totalTimeMs = info.path("total-time").asLong(-1);
            o.fdsAfter = DemoFaults.settledFds(s, fdsBefore);
            if (outcomes != null) {
                outcomes.accept(o);
            } else if (json) {
                System.out.println(DemoReport.json(info, engineName, o).toString());
            } else {
                MigrationProgress.report(info, say);
                DemoReport.devices(info, o, say);
                DemoReport.verification(o, say);
            }
            boolean keptSource = !o.status.equals("completed") && o.sourceRunning && o.sourceIntact && o.sourceVfsRunning
                    && o.disks.stream().allMatch(dk -> dk.imageOk) && (o.nic == null || o.nic.verified(false))
                    && (o.balloon == null || o.balloon.verified(false));
            // A back-end restarted in time may let the migration finish: then it must verify.
            boolean asAsked = faults.backendPhase() != null ? keptSource || o.status.equals("completed") && o.verified
                    : phase != null || faults.refusing() ? keptSource
                    : o.status.equals("completed") ? o.verified : faultInjected() && keptSource;
            return asAsked ? 0 : 1;
        }
    }

    private void act(QmpClient s, FerryRunProcess dst, String phase, List<String> actions) {
        try {
            if (faults.breakNetwork(phase, actions) || faults.killBackend(phase, backends, actions)) {
                s.execute("x-ferry-release", null);
            } else if (cancelAt != null) {
                actions.add("migrate_cancel sent in phase " + phase);
                s.execute("migrate_cancel", null);
            } else {
                dst.kill();
                actions.add("destination process killed in phase " + phase);
                s.execute("x-ferry-release", null);
            }
        } catch (Exception e) {
            actions.add("acting in phase " + phase + " failed: " + e.getMessage());
        }
    }

    private static String boundUri(JsonNode incomingInfo, String asked) {
        JsonNode a = incomingInfo.path("socket-address");
        if (a.isArray() && a.size() > 0) {
            JsonNode s = a.get(0);
            if (s.path("type").asText().equals("inet")) {
                return "tcp:" + s.path("host").asText() + ":" + s.path("port").asText();
            }
            if (s.path("type").asText().equals("unix")) {
                return "unix:" + s.path("path").asText();
            }
        }
        return asked;
    }

    /** Inflates the balloon by {@link #BALLOON_INFLATE} and waits until the guest's driver gave the pages. */
    private void inflate(QmpClient s, PrintStream say) throws Exception {
        long ramBytes = Sizes.parse(ram);
        long target = ramBytes - BALLOON_INFLATE;
        s.execute("balloon", QapiJson.JSON.createObjectNode().put("value", target));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (s.execute("query-balloon", null).path("actual").asLong() != target) {
            if (System.nanoTime() > deadline) {
                throw new IOException("the guest's balloon driver did not inflate to " + target + " bytes: "
                        + s.execute("x-ferry-guest", null).path("balloon"));
            }
            Thread.sleep(10);
        }
        balloonTarget = target;
        say.printf("balloon:         inflated by %d MiB: the guest keeps %d MiB (query-balloon)%n", BALLOON_INFLATE >> 20,
                target >> 20);
    }

    long balloonTarget = -1;

    /** When the migrate command went out (the peer's clock). */
    long migrateNanos;

    /**
     * The NIC's verdict. After a completed migration: the guest's frames reached the peer without
     * duplicate or reordering, the destination announced itself and the peer moved the MAC there,
     * and the destination's driver went on without error; frames lost each way while the guest was
     * down are counted. After a failed one: the source kept sending from its port, nothing moved
     * and nobody announced.
     */
    private void nicOutcome(Outcome o, JsonNode verify, boolean completed) throws InterruptedException {
        byte[] mac = dev.ferry.virtio.guest.NetTraffic.longToMac(Long.parseLong(NIC_MAC.replace(":", ""), 16));
        NicOutcome n = new NicOutcome();
        TrafficPeer.FlowStats before = peer.flow(mac);
        if (!completed) {
            Thread.sleep(500); // the source's guest goes on sending
        }
        TrafficPeer.FlowStats f = peer.flow(mac);
        n.guestFrames = f.received();
        n.guestLost = f.lost();
        n.guestDupsOrReorders = f.dupsOrReorders();
        n.portNow = f.port();
        long first = -1;
        for (TrafficPeer.Announce a : peer.announces()) {
            if (a.nanos() >= migrateNanos) {
                first = first < 0 ? a.nanos() : first;
                n.announces.add(String.format(java.util.Locale.ROOT, "%s %.0f ms", a.kind(), (a.nanos() - first) / 1e6));
            }
        }
        for (TrafficPeer.Move m : peer.moves()) {
            if (m.nanos() >= migrateNanos) {
                n.moved = true;
                n.sourcePort = m.from();
            }
        }
        n.sourceContinued = f.received() > before.received() && f.port().equals(before.port());
        for (JsonNode v : verify.path("nics")) {
            n.peerLost = v.path("peer-lost").asLong();
            n.peerDups = v.path("peer-dups").asLong();
            n.announceAcks = v.path("announce-acks").asLong();
            n.driverOk = v.path("ok").asBoolean();
            if (!n.driverOk) {
                n.problem = v.path("problems").toString();
            }
        }
        o.nic = n;
    }

    private static VfOutcome vf(Outcome o, String id) {
        for (VfOutcome v : o.vfs) {
            if (v.id.equals(id)) {
                return v;
            }
        }
        VfOutcome v = new VfOutcome();
        v.id = id;
        o.vfs.add(v);
        return v;
    }

    private Outcome verify(QmpClient s, QmpClient d, FerryRunProcess dst, JsonNode info, PrintStream say)
            throws Exception {
        Outcome o = new Outcome();
        o.status = info.path("status").asText();
        o.sourceState = s.execute("query-status", null).path("status").asText();
        o.sourceRunning = o.sourceState.equals("running");
        JsonNode sv = s.execute("x-ferry-verify", null);
        o.sourceIntact = sv.path("working-set").path("intact").asBoolean();
        JsonNode sourceVfs = s.execute("x-ferry-vfio", null).path("devices");
        for (JsonNode v : sourceVfs) {
            VfOutcome vo = new VfOutcome();
            vo.id = v.path("id").asText();
            vo.sourceState = v.path("device-state").asText();
            vo.precopyBytes = v.path("stats").path("precopy-bytes").asLong();
            vo.stopCopyBytes = v.path("stats").path("stop-copy-bytes").asLong();
            vo.resets = v.path("stats").path("resets").asInt();
            o.vfs.add(vo);
            // after a failed or cancelled migration the source's VFs must be running again
            o.sourceVfsRunning &= vo.sourceState.equals("RUNNING");
        }
        for (JsonNode v : sv.path("vfs")) {
            VfOutcome vo = vf(o, v.path("id").asText());
            vo.sourceDeliveries = v.path("ring").path("deliveries").asLong();
            if (!v.path("ring").path("ok").asBoolean()) {
                vo.problem = "source ring: " + v.path("ring").path("error").asText();
            }
        }
        DemoOutcomes.disks(o, s, sv, true);
        if (!o.status.equals("completed")) {
            if (peer != null) {
                nicOutcome(o, sv, false);
            }
            if (balloonTarget > 0) {
                DemoOutcomes.balloon(o, balloonTarget, s, d, sv, null, false);
            }
            o.destinationState = dst.isAlive() ? d.execute("query-status", null).path("status").asText() : "killed";
            o.problem = info.path("error-desc").asText(null);
            if (dst.isAlive()) {
                o.destinationProblem = d.execute("query-migrate", null).path("error-desc").asText(null);
                if (o.problem == null) {
                    o.problem = o.destinationProblem;
                }
            }
            return o;
        }
        String sourceDigest = s.execute("x-ferry-memory-digest", null).path("digest").asText();
        // The guest runs on the destination for a while; with a NIC, past QEMU's five announce rounds (~800 ms).
        Thread.sleep(peer != null ? 1200 : 300);
        JsonNode dv = d.execute("x-ferry-verify", null);
        o.destinationState = d.execute("query-status", null).path("status").asText();
        o.memoryEqual = sourceDigest.equals(dv.path("digest-at-load").asText());
        o.continued = dv.path("continuation").path("ok").asBoolean();
        o.stepsReplayed = dv.path("continuation").path("steps-replayed").asLong();
        o.digestMs = dv.path("digest-ms").asDouble();
        o.guestPauseMs = info.path("x-ferry-guest-pause").asDouble();
        boolean destIntact = dv.path("working-set").path("intact").asBoolean();
        boolean vfsVerified = true;
        for (JsonNode v : sv.path("vfs")) {
            VfOutcome vo = vf(o, v.path("id").asText());
            String srcDigest = v.path("state-digest").asText();
            for (JsonNode w : dv.path("vfs")) {
                if (w.path("id").asText().equals(vo.id)) {
                    vo.stateEqual = !srcDigest.isEmpty() && srcDigest.equals(w.path("digest-at-load").asText());
                    vo.ringOk = w.path("ring").path("ok").asBoolean();
                    vo.destinationDeliveries = w.path("ring").path("deliveries").asLong();
                    if (!vo.ringOk) {
                        vo.problem = "destination ring: " + w.path("ring").path("error").asText();
                    }
                }
            }
        }
        for (JsonNode w : d.execute("x-ferry-vfio", null).path("devices")) {
            vf(o, w.path("id").asText()).destinationState = w.path("device-state").asText();
        }
        for (VfOutcome vo : o.vfs) {
            vfsVerified &= vo.verified();
        }
        DemoOutcomes.disks(o, d, dv, false);
        for (DiskOutcome dk : o.disks) {
            vfsVerified &= dk.verified();
        }
        if (peer != null) {
            nicOutcome(o, dv, true);
            vfsVerified &= o.nic.verified(true);
        }
        if (balloonTarget > 0) {
            DemoOutcomes.balloon(o, balloonTarget, s, d, sv, dv, true);
            vfsVerified &= o.balloon.verified(true);
        }
        o.verified = o.memoryEqual && o.continued && o.stepsReplayed > 0 && destIntact
                && o.destinationState.equals("running") && vfsVerified;
        if (!o.verified) {
            o.problem = dv.toString();
        }
        return o;
    }
}
