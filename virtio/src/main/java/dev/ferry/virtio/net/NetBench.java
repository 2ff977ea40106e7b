package dev.ferry.virtio.net;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.guest.SoftNetDriver;
import dev.ferry.virtio.net.peer.TrafficPeer;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Frames per second and MB/s through virtio-net: the soft guest's driver exchanging frames with
 * the traffic peer over the {@code dgram} back-end (guest rings, device loop, UDP), against a plain
 * UDP socket playing the guest's part with the same peer, window and frame length (the socket
 * path alone). Each frame the guest sends is answered by one from the peer, so a "frame" below
 * is a round of one each way; MB/s counts both directions' Ethernet bytes.
 * <pre>
 *   java -cp ... dev.ferry.virtio.net.NetBench [seconds per run, default 3] [window, default 32]
 * </pre>
 * A benchmark, not a test: it prints numbers and asserts nothing.
 */
public final class NetBench {
    private static final byte[] MAC = {0x52, 0x54, 0, 0x12, 0x34, 0x56};

    private NetBench() {
    }

    record Result(String path, int frameLength, long rounds, double seconds) {
        double fps() {
            return rounds / seconds;
        }

        double mbps() {
            return 2.0 * rounds * frameLength / seconds / 1e6;
        }
    }

    public static void main(String[] args) throws Exception {
        int seconds = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        int window = args.length > 1 ? Integer.parseInt(args[1]) : 32;
        System.out.printf("virtio-net: soft guest <-> traffic peer (dgram) vs a plain UDP socket <-> the same peer; "
                + "window %d, %d s per run%n", window, seconds);
        System.out.printf("%-8s %6s %14s %10s %14s %10s %8s%n", "frame", "", "guest rounds/s", "guest MB/s",
                "socket rounds/s", "socket MB/s", "ratio");
        for (int len : new int[] {64, 512, 1514}) {
            Result g = guest(len, window, seconds);
            Result s = socket(len, window, seconds);
            System.out.printf("%-8s %6s %14.0f %10.1f %14.0f %10.1f %8.2f%n", len + " B", "", g.fps(), g.mbps(),
                    s.fps(), s.mbps(), g.fps() / s.fps());
        }
    }

    /** The soft guest: its driver, the device, the dgram back-end and the peer. */
    static Result guest(int frameLength, int window, int seconds) throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0))) {
            GuestMemory memory = GuestMemory.ofSize(64L << 20);
            SoftCpuEngine cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 1L << 20, 1L << 20, 1));
            try (Machine m = new Machine("net-bench", memory, cpus, RunState.PRELAUNCH)) {
                SoftInterruptController irqchip = new SoftInterruptController();
                m.attachInterruptController(irqchip);
                DevicePlacement placement = new DevicePlacement(m, false, (dev, state, event, data) -> {
                });
                Map<String, Object> o = new HashMap<>();
                o.put("netdev", "dgram:127.0.0.1:" + peer.port());
                o.put("guest-announce", false);
                VirtioMmioDevice nic = (VirtioMmioDevice) new VirtioNetKind().create(placement.contextFor("nic0"),
                        new DeviceOptions("bench", o));
                m.addDevice(nic);
                SoftNetDriver driver = new SoftNetDriver(m.deviceMemory(), 48L << 20, m.mmio(), nic.transport().base(),
                        irqchip, nic.transport().irq().gsi(), window, frameLength);
                cpus.addProgram("nic0", driver);
                m.vmStart();
                Thread.sleep(1000); // warm-up
                long r0 = driver.area().progress().peerFrames();
                long t0 = System.nanoTime();
                Thread.sleep(seconds * 1000L);
                long r1 = driver.area().progress().peerFrames();
                long t1 = System.nanoTime();
                m.vmStop(RunState.PAUSED);
                NetDriverArea.Progress p = driver.area().progress();
                if (p.errors() != 0) {
                    throw new IllegalStateException("the guest driver failed: " + p);
                }
                return new Result("guest", frameLength, r1 - r0, (t1 - t0) / 1e9);
            }
        }
    }

    /** A plain UDP socket doing the guest driver's part: DATA frames with a window, the peer's replies read back. */
    static Result socket(int frameLength, int window, int seconds) throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             DatagramChannel ch = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            ch.connect(new InetSocketAddress("127.0.0.1", peer.port()));
            ch.configureBlocking(false);
            ByteBuffer out = ByteBuffer.allocateDirect(frameLength);
            ByteBuffer in = ByteBuffer.allocateDirect(2048);
            out.put(0, NetTraffic.PEER_MAC).put(6, MAC).putShort(12, (short) NetTraffic.ETHERTYPE)
                    .putInt(14, NetTraffic.MAGIC).put(18, (byte) NetTraffic.DATA);
            long seq = 0;
            long replies = 0;
            long echo = 0;
            long warm = System.nanoTime() + 1_000_000_000L;
            long start = 0;
            long startReplies = 0;
            long end = warm + seconds * 1_000_000_000L;
            AtomicBoolean measuring = new AtomicBoolean();
            int idle = 0;
            while (true) {
                long now = System.nanoTime();
                if (!measuring.get() && now >= warm) {
                    measuring.set(true);
                    start = now;
                    startReplies = replies;
                }
                if (now >= end) {
                    return new Result("socket", frameLength, replies - startReplies, (now - start) / 1e9);
                }
                boolean work = false;
                while (seq - echo < window) {
                    out.putLong(20, ++seq).clear();
                    ch.write(out);
                    work = true;
                }
                in.clear();
                while (ch.read(in) > 0) {
                    echo = Math.max(echo, in.getLong(28));
                    replies++;
                    in.clear();
                    work = true;
                }
                if (!work && ++idle > 2000) {
                    echo = seq; // replies lost: go on, as the guest driver does
                    idle = 0;
                }
            }
        }
    }
}
