package dev.ferry.vmm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vmm.config.Sizes;
import dev.ferry.vmm.migrate.MigrationProgress;
import dev.ferry.vmm.process.FerryRunProcess;
import dev.ferry.vmm.qmp.QmpClient;
import dev.ferry.vmm.run.QapiJson;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;

/**
 * {@code ferry bench qemu-scenario}: QEMU's usual migration benchmark run side by side for QEMU
 * and Ferry, alternating, in one invocation. The scenario: a guest of {@code --ram} holding
 * {@code --fill} of random (incompressible) data of which random pages keep being dirtied at
 * {@code --dirty-rate}, migrated over loopback TCP with {@code --downtime-limit} and no bandwidth
 * cap. QEMU 7.2 ({@code qemu-system-x86_64 -accel tcg}, one vCPU) runs a Linux guest whose init
 * does exactly that ({@link QemuGuest}); Ferry runs the soft engine with the same figures. Per run
 * it prints total time, downtime (QEMU's definition for both), Ferry's guest-visible pause, bytes,
 * rate and passes; then medians and Ferry/QEMU ratios, and the loopback TCP limit measured in the
 * same invocation. Each migration is one sample; not a JMH benchmark.
 */
@Command(name = "qemu-scenario", mixinStandardHelpOptions = true,
        description = "QEMU's migration benchmark scenario, QEMU 7.2 and Ferry side by side (alternating runs).")
public final class QemuScenarioCommand implements Callable<Integer> {
    @Option(names = "--runs", defaultValue = "3", description = "runs of each (default ${DEFAULT-VALUE})")
    int runs;

    @Option(names = "--ram", defaultValue = "1G", description = "guest RAM (default ${DEFAULT-VALUE})")
    String ram;

    @Option(names = "--fill", defaultValue = "700M", description = "random data in the guest (default ${DEFAULT-VALUE})")
    String fill;

    @Option(names = "--dirty-rate", defaultValue = "40M", description = "bytes/s of pages dirtied (default ${DEFAULT-VALUE})")
    String dirtyRate;

    @Option(names = "--downtime-limit", defaultValue = "300", description = "ms (default ${DEFAULT-VALUE})")
    long downtimeLimit;

    @Option(names = "--kernel", description = "the Linux kernel QEMU boots (default: newest /boot/vmlinuz-*, else"
            + " Debian's linux-image-amd64 fetched into the cache)")
    Path kernel;

    @Option(names = "--cache", description = "where the QEMU guest is built (default: java.io.tmpdir/ferry-qemu-guest)")
    Path cache;

    @Option(names = "--qemu", defaultValue = "qemu-system-x86_64", description = "the QEMU binary (default ${DEFAULT-VALUE})")
    String qemu;

    @Option(names = "--ferry-prealloc", defaultValue = "false",
            description = "Ferry's memory prealloc: false, true (both VMMs) or background (the destination's;"
                    + " the source's guest filled its RAM before) (default ${DEFAULT-VALUE})")
    String ferryPrealloc;

    @Option(names = "--multifd-channels", defaultValue = "0",
            description = "Ferry migrates RAM over this many multifd channels; 0: one stream (default ${DEFAULT-VALUE})")
    int multifdChannels;

    @Option(names = "--qemu-multifd-channels", defaultValue = "0",
            description = "QEMU migrates RAM over this many multifd channels; 0: one stream (default ${DEFAULT-VALUE})")
    int qemuMultifdChannels;

    @Option(names = "--hugetlb", defaultValue = "none",
            description = "whose guest RAM comes from the 2 MiB huge page pool: none, both, ferry or qemu"
                    + " (default ${DEFAULT-VALUE}); the pool must hold two guests (vm.nr_hugepages)")
    String hugetlb;

    @Option(names = "--no-migration-warm-up", description = "Ferry's VMMs skip their warm-up migrations at start")
    boolean noWarmUp;

    @Option(names = "--loopback-ram", description = "also measure one loopback TCP stream from a populated buffer"
            + " of the guest's RAM size into another (2 MiB pages with --hugetlb ferry|both): the copy no migration"
            + " avoids, from and into memory that does not fit in a cache; needs twice the guest's RAM")
    boolean loopbackRam;

    @Option(names = "--no-qemu", description = "run Ferry only")
    boolean noQemu;

    @Option(names = "--json", description = "one JSON object instead of the table")
    boolean json;

    private final PrintStream out = System.out;

    /** One migration; times in ms; pause -1 when unknown (QEMU without a return path). */
    record Sample(String tool, int run, String status, long total, long setup, long downtime, long pause,
                  long transferred, long passes, String phases, double cpu) {
        /** Bytes per second over the migration after setup. */
        double rate() {
            return transferred / (Math.max(1, total - setup) / 1e3);
        }
    }

    @Override
    public Integer call() throws Exception {
        long ramBytes = Sizes.parse(ram);
        long fillBytes = Sizes.parse(fill);
        long rate = Sizes.parse(dirtyRate);
        if (fillBytes >= ramBytes || fillBytes % (1 << 20) != 0 || rate % (1 << 20) != 0) {
            System.err.println("ferry bench qemu-scenario: --fill must be whole MiB below --ram, --dirty-rate whole MiB/s");
            return 2;
        }
        if (!List.of("none", "both", "ferry", "qemu").contains(hugetlb)) {
            System.err.println("ferry bench qemu-scenario: --hugetlb is none, both, ferry or qemu, not " + hugetlb);
            return 2;
        }
        if (!hugetlb.equals("none")) {
            long need = 2 * (ramBytes / dev.ferry.core.memory.HugePages.SIZE);
            long free = dev.ferry.core.memory.HugePages.available();
            if (ramBytes % dev.ferry.core.memory.HugePages.SIZE != 0 || free < need) {
                System.err.printf("ferry bench qemu-scenario: --hugetlb %s needs %d free 2 MiB huge pages (two guests of %s);"
                        + " the pool has %d available (sysctl vm.nr_hugepages=N)%n", hugetlb, need, ram, free);
                return 2;
            }
        }
        Path work = Files.createTempDirectory("ferry-qemu-scenario");
        QemuGuest guest = null;
        String qemuVersion = null;
        if (!noQemu) {
            qemuVersion = version();
            Path c = cache != null ? cache : Path.of(System.getProperty("java.io.tmpdir"), "ferry-qemu-guest");
            guest = QemuGuest.prepare(c, kernel);
            say("QEMU guest:  %s, kernel %s, initramfs %s%n", qemuVersion, guest.kernel, guest.initrd);
        }
        double loopback = loopbackBytesPerSecond(1L << 30);
        say("scenario:    %s guest, %s random data, %s/s dirtied, downtime-limit %d ms, loopback TCP, no bandwidth cap%n",
                ram, fill, dirtyRate, downtimeLimit);
        say("streams:     Ferry %s, QEMU %s%n", streams(multifdChannels), streams(qemuMultifdChannels));
        say("Ferry start: %s%n", noWarmUp ? "no warm-up" : "warm-up migrations before QMP opens");
        say("guest RAM:   Ferry %s, QEMU %s%n", hugetlbFor("ferry") ? "2 MiB huge pages" : "4 KiB memfd pages",
                hugetlbFor("qemu") ? "2 MiB huge pages" : "4 KiB anonymous pages");
        say("loopback:    %.0f MB/s (one TCP stream, 1 GiB, measured now)%n", loopback / 1e6);
        double ramToRam = Double.NaN;
        if (loopbackRam) {
            ramToRam = loopbackRamToRam(ramBytes, hugetlbFor("ferry"));
            say("loopback:    %.0f MB/s RAM to RAM (one TCP stream from a populated %s buffer into another, %s;"
                    + " %.2f of the above)%n", ramToRam / 1e6, ram, hugetlbFor("ferry") ? "2 MiB pages" : "4 KiB pages",
                    ramToRam / loopback);
        }
        say("%n");
        say("%-6s %3s %-10s %8s %8s %9s %9s %10s %8s %6s %6s  %s%n", "tool", "run", "status", "total", "setup", "downtime",
                "pause", "MiB sent", "MB/s", "CPU s", "passes", "pause phases (ms)");
        List<Sample> samples = new ArrayList<>();
        for (int r = 1; r <= runs; r++) {
            if (guest != null) {
                samples.add(print(qemuRun(guest, work.resolve("qemu-" + r), r, ramBytes, fillBytes, rate)));
            }
            samples.add(print(ferryRun(work.resolve("ferry-" + r), r, ramBytes, fillBytes, rate)));
        }
        summary(samples, loopback, ramToRam);
        return samples.stream().allMatch(s -> s.status.equals("completed")) ? 0 : 1;
    }

    private static String streams(int channels) {
        return channels <= 0 ? "one stream" : "multifd, " + channels + " channel(s)";
    }

    private void say(String format, Object... args) {
        if (!json) {
            out.printf(Locale.ROOT, format, args);
        }
    }

    private Sample print(Sample s) {
        say("%-6s %3d %-10s %5d ms %5d ms %6d ms %9s %10.1f %8.0f %6.1f %6d  %s%n", s.tool, s.run, s.status, s.total, s.setup,
                s.downtime, s.pause < 0 ? "n/a" : s.pause + " ms", s.transferred / 1048576.0, s.rate() / 1e6, s.cpu, s.passes,
                s.phases);
        return s;
    }

    private String version() throws IOException, InterruptedException {
        try {
            Process p = new ProcessBuilder(qemu, "--version").redirectErrorStream(true).start();
            String v = new String(p.getInputStream().readAllBytes()).lines().findFirst().orElse("");
            p.waitFor(10, TimeUnit.SECONDS);
            return v.replace("QEMU emulator version ", "QEMU ");
        } catch (IOException e) {
            throw new IOException(qemu + " not found (apt-get install qemu-system-x86), or run with --no-qemu", e);
        }
    }

    // ---- QEMU ----

    private Sample qemuRun(QemuGuest g, Path dir, int run, long ramBytes, long fillBytes, long rate) throws Exception {
        Files.createDirectories(dir);
        int port = freePort();
        Process src = qemuProcess(g, dir, "source", ramBytes, fillBytes, rate, List.of());
        Process dst = qemuProcess(g, dir, "destination", ramBytes, fillBytes, rate, List.of("-incoming", "defer"));
        try (QmpClient s = qmp(dir.resolve("source.qmp"), src); QmpClient d = qmp(dir.resolve("destination.qmp"), dst)) {
            awaitSerial(dir.resolve("source.serial"), "FERRY-READY", src);
            Thread.sleep(1000); // the guest dirties at its steady rate before the migration starts
            multifd(s, d, qemuMultifdChannels);
            d.execute("migrate-incoming", QapiJson.JSON.createObjectNode().put("uri", "tcp:127.0.0.1:" + port));
            s.execute("migrate-set-parameters", QapiJson.JSON.createObjectNode().put("downtime-limit", downtimeLimit)
                    .put("max-bandwidth", 1L << 40)); // QEMU's 0 is not "unlimited"; 1 TiB/s is
            double cpu0 = cpuSeconds(src.pid()) + cpuSeconds(dst.pid());
            JsonNode info = migrate(s, d, port);
            String status = status(info, d);
            double cpu = cpuSeconds(src.pid()) + cpuSeconds(dst.pid()) - cpu0;
            JsonNode r = info.path("ram");
            return new Sample("qemu", run, status, info.path("total-time").asLong(), info.path("setup-time").asLong(),
                    info.path("downtime").asLong(), -1, r.path("transferred").asLong(), r.path("dirty-sync-count").asLong(), "",
                    cpu);
        } finally {
            src.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            dst.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }

    private boolean hugetlbFor(String tool) {
        return hugetlb.equals("both") || hugetlb.equals(tool);
    }

    private Process qemuProcess(QemuGuest g, Path dir, String name, long ramBytes, long fillBytes, long rate,
                                List<String> extra) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(qemu, "-accel", "tcg", "-nodefaults", "-no-user-config", "-smp", "1",
                "-m", (ramBytes >> 20) + "M", "-kernel", g.kernel.toString(), "-initrd", g.initrd.toString(),
                "-append", "console=ttyS0 quiet panic=-1 ferry.fill=" + (fillBytes >> 20) + " ferry.rate=" + (rate >> 20),
                "-display", "none", "-serial", "file:" + dir.resolve(name + ".serial"),
                "-qmp", "unix:" + dir.resolve(name + ".qmp") + ",server=on,wait=off", "-no-reboot"));
        if (hugetlbFor("qemu")) {
            cmd.addAll(List.of("-object", "memory-backend-memfd,id=ram0,size=" + (ramBytes >> 20) + "M,hugetlb=on,hugetlbsize=2M,share=on",
                    "-machine", "memory-backend=ram0"));
        }
        cmd.addAll(extra);
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve(name + ".log").toFile()).start();
    }

    private static QmpClient qmp(Path socket, Process p) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!Files.exists(socket)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                throw new IOException("QEMU did not open " + socket + (p.isAlive() ? "" : " (exit " + p.exitValue() + ")"));
            }
            Thread.sleep(20);
        }
        // QEMU binds the socket (the file appears) a moment before it listens: a refused connect
        // in that window is retried.
        while (true) {
            try {
                QmpClient c = QmpClient.connect(socket, Duration.ofSeconds(30));
                c.negotiate();
                return c;
            } catch (IOException e) {
                if (!(e.getCause() instanceof java.net.ConnectException) || !p.isAlive() || System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(20);
            }
        }
    }

    private static void awaitSerial(Path serial, String word, Process p) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
        while (true) {
            if (Files.exists(serial) && Files.readString(serial, java.nio.charset.StandardCharsets.ISO_8859_1).contains(word)) {
                return;
            }
            if (!p.isAlive() || System.nanoTime() > deadline) {
                throw new IOException("the QEMU guest did not print " + word + " (see " + serial + ")");
            }
            Thread.sleep(50);
        }
    }

    // ---- Ferry ----

    private Sample ferryRun(Path dir, int run, long ramBytes, long fillBytes, long rate) throws Exception {
        Files.createDirectories(dir);
        int port = freePort();
        for (String name : List.of("source", "destination")) {
            ObjectNode c = QapiJson.JSON.createObjectNode();
            c.put("name", name);
            ObjectNode mem = c.putObject("memory").put("size", ramBytes);
            switch (ferryPrealloc) {
                case "true" -> mem.put("prealloc", true);
                // The source's guest has filled its working set before the migration; a VM that has
                // run for a while has long finished populating, so populating it now would only
                // take a core from the migration the bench measures. The destination is fresh.
                case "background" -> {
                    if (name.equals("destination")) {
                        mem.put("prealloc", "background");
                    } else {
                        mem.put("prealloc", false);
                    }
                }
                default -> mem.put("prealloc", false);
            }
            mem.put("hugetlb", hugetlbFor("ferry"));
            c.put("vcpus", 1);
            c.put("engine", "soft");
            c.putObject("workload").put("dirty-rate", rate).put("working-set", fillBytes).put("seed", 2026)
                    .put("populate", name.equals("source") ? 1.0 : 0.0);
            c.putArray("devices");
            Files.writeString(dir.resolve(name + ".json"), c.toPrettyString());
        }
        List<String> warm = noWarmUp ? List.of("--no-migration-warm-up") : List.of();
        List<String> incoming = new ArrayList<>(List.of("--incoming", "defer"));
        incoming.addAll(warm);
        try (FerryRunProcess dst = FerryRunProcess.start("destination", dir, dir.resolve("destination.json"), incoming);
             FerryRunProcess src = FerryRunProcess.start("source", dir, dir.resolve("source.json"), warm)) {
            QmpClient s = src.qmp();
            QmpClient d = dst.qmp();
            awaitRunning(s);
            Thread.sleep(1000);
            multifd(s, d, multifdChannels);
            d.execute("migrate-incoming", QapiJson.JSON.createObjectNode().put("uri", "tcp:127.0.0.1:" + port));
            s.execute("migrate-set-parameters", QapiJson.JSON.createObjectNode().put("downtime-limit", downtimeLimit)
                    .put("max-bandwidth", 0));
            double cpu0 = cpuSeconds(src.pid()) + cpuSeconds(dst.pid());
            JsonNode info = migrate(s, d, port);
            String status = status(info, d);
            double cpu = cpuSeconds(src.pid()) + cpuSeconds(dst.pid()) - cpu0;
            JsonNode r = info.path("ram");
            StringBuilder phases = new StringBuilder();
            info.path("x-ferry-downtime-breakdown").fields().forEachRemaining(f -> phases.append(phases.length() == 0 ? "" : " ")
                    .append(f.getKey().replace("-us", "")).append('=')
                    .append(String.format(Locale.ROOT, "%.1f", f.getValue().asLong() / 1000.0)));
            return new Sample("ferry", run, status, info.path("total-time").asLong(), info.path("setup-time").asLong(),
                    info.path("downtime").asLong(), info.path("x-ferry-guest-pause").asLong(-1), r.path("transferred").asLong(),
                    r.path("dirty-sync-count").asLong(), phases.toString(), cpu);
        }
    }

    // ---- shared ----

    /** Turns multifd on at both ends with {@code channels} channels (before migrate-incoming); 0 leaves it off. */
    private static void multifd(QmpClient s, QmpClient d, int channels) throws Exception {
        if (channels <= 0) {
            return;
        }
        for (QmpClient c : List.of(s, d)) {
            ObjectNode caps = QapiJson.JSON.createObjectNode();
            caps.putArray("capabilities").addObject().put("capability", "multifd").put("state", true);
            c.execute("migrate-set-capabilities", caps);
            c.execute("migrate-set-parameters", QapiJson.JSON.createObjectNode().put("multifd-channels", channels));
        }
    }

    private static JsonNode migrate(QmpClient s, QmpClient d, int port) throws Exception {
        s.execute("migrate", QapiJson.JSON.createObjectNode().put("uri", "tcp:127.0.0.1:" + port));
        return MigrationProgress.follow(() -> s.execute("query-migrate", null), null, MigrationProgress.Display.NONE,
                Duration.ofMinutes(10), Duration.ofMillis(20), i -> { });
    }

    /** The source's final status; "dest-STATE" when it completed but the destination does not run. */
    private static String status(JsonNode info, QmpClient d) throws Exception {
        String status = info.path("status").asText();
        if (status.equals("completed")) {
            String dstStatus = awaitRunning(d);
            if (!dstStatus.equals("running")) {
                return "dest-" + dstStatus;
            }
        }
        return status;
    }

    private static String awaitRunning(QmpClient c) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        String st;
        do {
            st = c.execute("query-status", null).path("status").asText();
            if (st.equals("running")) {
                return st;
            }
            Thread.sleep(20);
        } while (System.nanoTime() < deadline);
        return st;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /** One TCP stream over loopback, direct buffers on both ends: the link both tools share. */
    static double loopbackBytesPerSecond(long bytes) throws Exception {
        try (ServerSocketChannel server = ServerSocketChannel.open()) {
            server.bind(new InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0));
            Thread reader = new Thread(() -> {
                try (SocketChannel c = server.accept()) {
                    ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                    while (c.read(b) >= 0) {
                        b.clear();
                    }
                } catch (IOException e) {
                    // the measurement below fails on its own
                }
            }, "ferry-loopback-reader");
            reader.start();
            try (SocketChannel c = SocketChannel.open(server.getLocalAddress())) {
                ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                long t0 = System.nanoTime();
                long sent = 0;
                while (sent < bytes) {
                    b.clear();
                    sent += c.write(b);
                }
                c.shutdownOutput();
                reader.join();
                return sent / ((System.nanoTime() - t0) / 1e9);
            }
        }
    }

    /**
     * One loopback TCP stream moving {@code bytes} from a populated buffer into another, through
     * the same detached sockets and the same copies the multifd channels make, 1 MiB per call:
     * what a migration of that much random data costs at the least on this host.
     */
    static double loopbackRamToRam(long bytes, boolean hugePages) throws Exception {
        int flags = dev.ferry.core.sys.Linux.MAP_PRIVATE | dev.ferry.core.sys.Linux.MAP_ANONYMOUS
                | dev.ferry.core.sys.Linux.MAP_POPULATE | (hugePages ? dev.ferry.core.sys.Linux.MAP_HUGETLB : 0);
        int prot = dev.ferry.core.sys.Linux.PROT_READ | dev.ferry.core.sys.Linux.PROT_WRITE;
        long step = 1 << 20;
        long src = dev.ferry.core.sys.Sys.mmap(0, bytes, prot, flags, -1, 0);
        long dst = 0;
        try (var transports = new dev.ferry.migration.transport.NettyMigrationTransports();
             var listener = transports.listen("tcp:127.0.0.1:0")) {
            dst = dev.ferry.core.sys.Sys.mmap(0, bytes, prot, flags, -1, 0);
            java.util.SplittableRandom random = new java.util.SplittableRandom(1);
            for (long off = 0; off < bytes; off += 8) {
                dev.ferry.core.sys.NativeMemory.putLong(src + off, random.nextLong());
            }
            // Populated is not yet backed under a nested hypervisor: the outer host backs a page at
            // its first access, so touch every destination page too (as GuestMemory's populator does).
            for (long off = 0; off < bytes; off += 4096) {
                dev.ferry.core.sys.NativeMemory.touchForWrite(dst + off);
            }
            var source = transports.connect(listener.boundUri());
            var destination = listener.accept(Duration.ofSeconds(10));
            var out = source.detach();
            var in = destination.detach();
            source.close();
            destination.close();
            long into = dst;
            // As the multifd channels do: 2 MiB pages go straight between the socket and memory,
            // 4 KiB pages through a buffer copied in user space (see Multifd.BOUNCE_BYTES).
            long inBounce = hugePages ? 0 : dev.ferry.core.sys.NativeMemory.allocate(step);
            long outBounce = hugePages ? 0 : dev.ferry.core.sys.NativeMemory.allocate(step);
            java.util.concurrent.CompletableFuture<Void> reader = java.util.concurrent.CompletableFuture.runAsync(() -> {
                try (var v = new dev.ferry.migration.transport.IoVector(1)) {
                    for (long off = 0; off < bytes; off += step) {
                        long n = Math.min(step, bytes - off);
                        v.clear();
                        v.add(hugePages ? into + off : inBounce, n);
                        in.read(v);
                        if (!hugePages) {
                            dev.ferry.core.sys.NativeMemory.copy(inBounce, into + off, n);
                        }
                    }
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            long t0 = System.nanoTime();
            try (var v = new dev.ferry.migration.transport.IoVector(1)) {
                for (long off = 0; off < bytes; off += step) {
                    long n = Math.min(step, bytes - off);
                    v.clear();
                    if (!hugePages) {
                        dev.ferry.core.sys.NativeMemory.copy(src + off, outBounce, n);
                    }
                    v.add(hugePages ? src + off : outBounce, n);
                    out.write(v);
                }
                reader.get(10, TimeUnit.MINUTES);
                return bytes / ((System.nanoTime() - t0) / 1e9);
            } finally {
                out.shutdown();
                in.shutdown();
                reader.handle((x, e) -> null).get(10, TimeUnit.SECONDS);
                out.close();
                in.close();
                if (!hugePages) {
                    dev.ferry.core.sys.NativeMemory.free(inBounce);
                    dev.ferry.core.sys.NativeMemory.free(outBounce);
                }
            }
        } finally {
            dev.ferry.core.sys.Sys.munmap(src, bytes);
            if (dst != 0) {
                dev.ferry.core.sys.Sys.munmap(dst, bytes);
            }
        }
    }

    /** User plus system CPU seconds the process has used so far (all its threads); 0 once it is gone. */
    static double cpuSeconds(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0; // utime, stime in USER_HZ ticks
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    private void summary(List<Sample> samples, double loopback, double ramToRam) {
        List<Sample> q = samples.stream().filter(s -> s.tool.equals("qemu") && s.status.equals("completed")).toList();
        List<Sample> f = samples.stream().filter(s -> s.tool.equals("ferry") && s.status.equals("completed")).toList();
        double qt = median(q, s -> s.total), qd = median(q, s -> s.downtime);
        double ft = median(f, s -> s.total), fd = median(f, s -> s.downtime), fp = median(f, s -> s.pause);
        double fr = median(f, Sample::rate);
        long overLimit = f.stream().filter(s -> s.pause > downtimeLimit).count();
        if (json) {
            ObjectNode o = QapiJson.JSON.createObjectNode();
            o.put("ram", ram).put("fill", fill).put("dirty_rate", dirtyRate).put("downtime_limit_ms", downtimeLimit)
                    .put("loopback_bytes_per_s", loopback).put("loopback_ram_to_ram_bytes_per_s", ramToRam).put("ferry_multifd_channels", multifdChannels)
                    .put("hugetlb", hugetlb).put("ferry_migration_warm_up", !noWarmUp)
                    .put("qemu_multifd_channels", qemuMultifdChannels);
            ArrayNode a = o.putArray("runs");
            for (Sample s : samples) {
                a.addObject().put("tool", s.tool).put("run", s.run).put("status", s.status).put("total_ms", s.total)
                        .put("downtime_ms", s.downtime).put("guest_pause_ms", s.pause).put("transferred_bytes", s.transferred)
                        .put("setup_ms", s.setup).put("bytes_per_s", s.rate()).put("cpu_seconds", s.cpu).put("passes", s.passes).put("phases", s.phases);
            }
            o.put("qemu_median_total_ms", qt).put("qemu_median_downtime_ms", qd).put("ferry_median_total_ms", ft)
                    .put("ferry_median_downtime_ms", fd).put("ferry_median_guest_pause_ms", fp)
                    .put("ferry_runs_over_limit", overLimit);
            out.println(o.toPrettyString());
            return;
        }
        out.println();
        out.printf(Locale.ROOT, "medians:     ferry total %.0f ms, downtime %.0f ms, guest pause %.0f ms, %.0f MB/s (%.2f of loopback)%n",
                ft, fd, fp, fr / 1e6, fr / loopback);
        if (!Double.isNaN(ramToRam)) {
            out.printf(Locale.ROOT, "             %.2f of loopback RAM to RAM%n", fr / ramToRam);
        }
        if (!q.isEmpty() && !f.isEmpty()) {
            out.printf(Locale.ROOT, "             qemu  total %.0f ms, downtime %.0f ms%n", qt, qd);
            out.printf(Locale.ROOT, "ratios:      total ferry/qemu %.2f (goal <= 0.33), downtime ferry/qemu %.2f (goal <= 1)%n",
                    ft / qt, fd / qd);
        }
        out.printf(Locale.ROOT, "CPU:         ferry %.2f s per GB sent%s (both processes, every thread, during the migration)%n",
                median(f, s -> s.cpu / (s.transferred / 1e9)),
                q.isEmpty() ? "" : String.format(Locale.ROOT, ", qemu %.2f s", median(q, s -> s.cpu / (s.transferred / 1e9))));
        out.printf("guest pause over the %d ms limit: %d of %d Ferry runs%n", downtimeLimit, overLimit, f.size());
    }

    private static double median(List<Sample> l, ToDoubleFunction<Sample> f) {
        if (l.isEmpty()) {
            return Double.NaN;
        }
        double[] v = l.stream().mapToDouble(f).sorted().toArray();
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }
}
