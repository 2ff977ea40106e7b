package dev.ferry.vmm.bench;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.MultiQueueNet;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.vhostuser.frontend.VhostUserNetKind;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.guest.SoftMqNetDriver;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.peer.TrafficPeer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Frames per second through a vhost-user-net NIC with {@code pairs} queue pairs, served by
 * Ferry's back-end ({@code MultiQueueNet} above one pair, {@code VirtioNet} at one) over a UDP
 * socket to an in-process {@link TrafficPeer}: {@link SoftMqNetDriver} on one soft vCPU runs one
 * flow per pair (window 32 each, 512-byte frames), the peer answers every DATA frame. A score is
 * reply frames the guest received per second, all flows together. It measures the path's cost
 * per pair, not parallel speed-up: one vCPU thread drives every pair, and the back-end serves
 * them on one event loop.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx512m"})
public class VhostUserNetBenchmark {
    static final int BATCH = 1024;
    private static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    /** Queue pairs of the NIC and flows of the guest. */
    @Param({"1", "2"})
    public int pairs;

    /**
     * The back-end's model: {@code default} as {@code serveNet} picks it ({@code VirtioNet} for one
     * pair, {@code MultiQueueNet} above), {@code mq} {@code MultiQueueNet} always (one pair
     * included, to compare the two models on the same path).
     */
    @Param({"default", "mq"})
    public String model;

    private Path dir;
    private TrafficPeer peer;
    private VhostUserBackend backend;
    private Machine machine;
    private SoftMqNetDriver driver;

    @Setup(Level.Trial)
    public void start() throws Exception {
        if (!model.equals("default") && !model.equals("mq")) {
            throw new IllegalArgumentException("model '" + model + "': default or mq");
        }
        dir = Files.createTempDirectory("ferry-bench-vhu-net");
        peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
        DgramBackend net = new DgramBackend(new InetSocketAddress("127.0.0.1", 0), (InetSocketAddress) peer.address());
        BackendOptions where = BackendOptions.server(dir.resolve("net.sock"));
        backend = switch (model) {
            case "default" -> VhostUserBackend.serveNet(new NetOptions(MAC, 256, false), net, where, pairs);
            case "mq" -> VhostUserBackend.serve("vhost-user-net", new MultiQueueNet("vhost-user-net", pairs, 256, net),
                    where);
            default -> throw new IllegalStateException(model);
        };
        GuestMemory memory = GuestMemory.ofSize(64L << 20);
        SoftCpuEngine cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 1L << 20, 8L << 20, 7));
        machine = new Machine("bench", memory, cpus, RunState.PRELAUNCH);
        SoftInterruptController irqchip = new SoftInterruptController();
        machine.attachInterruptController(irqchip);
        machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE, irqchip,
                MigrationPriority.DEVICE);
        DevicePlacement placement = new DevicePlacement(machine, false, (dev, state, event, data) -> { });
        Map<String, Object> opts = new LinkedHashMap<>();
        opts.put("socket", backend.socket().toString());
        opts.put("queues", pairs);
        VirtioMmioDevice nic = (VirtioMmioDevice) new VhostUserNetKind().create(placement.contextFor("nic0"),
                new DeviceOptions("devices[0]", opts));
        machine.addDevice(nic);
        driver = new SoftMqNetDriver(machine.deviceMemory(), 40L << 20, machine.mmio(), nic.transport().base(), irqchip,
                nic.transport().irq().gsi(), pairs, 32, 512);
        cpus.addProgram("nic0", driver);
        machine.vmStart();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (driver.progress().pairs() != pairs || driver.progress().leastReceived() == 0) {
            if (System.nanoTime() > deadline || driver.progress().errors() != 0) {
                throw new IllegalStateException("the guest's flows did not start: " + driver.progress());
            }
            Thread.sleep(5);
        }
    }

    /** Waits until the guest received {@link #BATCH} more frames. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long frames() {
        long target = driver.progress().received() + BATCH;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        long now;
        while ((now = driver.progress().received()) < target) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("traffic stalled: " + driver.progress() + "\n" + peer.report());
            }
            LockSupport.parkNanos(50_000);
        }
        return now;
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        SoftMqNetDriver.Progress p = driver.progress();
        if (machine != null) {
            machine.close();
        }
        if (backend != null) {
            backend.close();
        }
        if (peer != null) {
            peer.close();
        }
        if (p.errors() != 0) {
            throw new IllegalStateException("the guest saw errors: " + p);
        }
        for (SoftMqNetDriver.Flow f : p.flows()) {
            if (f.dups() != 0 || f.misdelivered() != 0) {
                throw new IllegalStateException("a flow saw duplicates or misdelivery: " + p);
            }
        }
        Files.deleteIfExists(dir.resolve("net.sock"));
        Files.deleteIfExists(dir);
    }
}
