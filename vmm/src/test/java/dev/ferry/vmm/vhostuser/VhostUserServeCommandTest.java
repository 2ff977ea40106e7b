package dev.ferry.vmm.vhostuser;

import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import dev.ferry.vmm.Ferry;
import dev.ferry.vmm.process.FerryRunProcess;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code ferry vhost-user serve}: a real child process serving a front-end, and its option errors. */
@Timeout(60)
class VhostUserServeCommandTest {
    @TempDir
    Path dir;

    private record Run(int exit, String out, String err) {
    }

    private static Run ferry(String... args) {
        CommandLine cl = new CommandLine(new Ferry());
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return new Run(cl.execute(args), out.toString(), err.toString());
    }

    @Test
    void badOptionsExitTwoWithTheReason() throws Exception {
        Path img = dir.resolve("disk.img");
        Files.write(img, new byte[4096]);
        Run r = ferry("vhost-user", "serve", "--blk", img.toString(), "--socket", dir.resolve("s").toString(),
                "--fault", "bogus");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("'bogus' is not a back-end fault; known: log-omit, wrong-vring-base, write-after-disable"),
                r.err());
        r = ferry("vhost-user", "serve", "--blk", dir.resolve("missing.img").toString(), "--socket",
                dir.resolve("s").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("does not exist"), r.err());
        r = ferry("vhost-user", "serve", "--blk", img.toString(), "--net", "dgram:127.0.0.1:9", "--socket",
                dir.resolve("s").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("exactly one of --blk IMAGE and --net NETDEV"), r.err());
        r = ferry("vhost-user", "serve", "--net", "carrier-pigeon:1", "--socket", dir.resolve("s").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("is not dgram:HOST:PORT or tap:NAME"), r.err());
        r = ferry("vhost-user", "serve", "--net", "dgram:127.0.0.1:9", "--queues", "9", "--socket",
                dir.resolve("s").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("--queues 9: a net back-end serves 1..8 queue pairs"), r.err());
        r = ferry("vhost-user", "serve", "--net", "dgram:127.0.0.1:9", "--queues", "0", "--socket",
                dir.resolve("s").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("0 queue pairs; 1..16"), r.err());
        assertFalse(Files.exists(dir.resolve("s")));
    }

    @Test
    void servesNetOverUdpAndAnnouncesForSendRarp() throws Exception {
        Path sock = dir.resolve("net.sock");
        try (java.nio.channels.DatagramChannel peer = java.nio.channels.DatagramChannel.open()
                .bind(new java.net.InetSocketAddress("127.0.0.1", 0))) {
            int port = ((java.net.InetSocketAddress) peer.getLocalAddress()).getPort();
            Process p = start(List.of("vhost-user", "serve", "--net", "dgram:127.0.0.1:" + port, "--mac",
                    "52:54:00:aa:bb:cc", "--socket", sock.toString()), "net.log");
            try {
                String line = awaitLine(p, "net.log");
                assertTrue(line.contains("vhost-user-net 52:54:00:aa:bb:cc on dgram 127.0.0.1:"), line);
                try (BackendConnection c = BackendConnection.connect(sock, "test", 5_000)) {
                    assertTrue(VhostUser.has(c.getU64(VhostUser.GET_FEATURES), dev.ferry.virtio.net.VirtioNet.F_GUEST_ANNOUNCE),
                            "GUEST_ANNOUNCE offered by default, as DPDK does");
                    long pf = c.getU64(VhostUser.GET_PROTOCOL_FEATURES);
                    assertTrue(VhostUser.has(pf, VhostUser.PF_RARP));
                    c.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(pf));
                    c.replyAck(true);
                    c.request(VhostUser.SEND_RARP, Payloads.rarp(new byte[] {0x52, 0x54, 0, (byte) 0xaa, (byte) 0xbb, (byte) 0xcc}));
                }
                ByteBuffer got = ByteBuffer.allocate(256);
                peer.receive(got);
                assertEquals(0x8035, ((got.get(12) & 0xff) << 8) | (got.get(13) & 0xff), "a RARP frame");
                p.destroy();
                assertTrue(p.waitFor(20, TimeUnit.SECONDS));
                assertFalse(Files.exists(sock));
            } finally {
                p.destroyForcibly();
            }
        }
    }

    /** {@code --net ... --queues 2}: two queue pairs, so GET_QUEUE_NUM says 4 and protocol feature MQ is offered. */
    @Test
    void servesNetWithQueuePairs() throws Exception {
        Path sock = dir.resolve("mq.sock");
        Process p = start(List.of("vhost-user", "serve", "--net", "dgram:127.0.0.1:9", "--queues", "2", "--socket",
                sock.toString()), "mq.log");
        try {
            String line = awaitLine(p, "mq.log");
            assertTrue(line.contains(", 2 queue pairs"), line);
            try (BackendConnection c = BackendConnection.connect(sock, "test", 5_000)) {
                long pf = c.getU64(VhostUser.GET_PROTOCOL_FEATURES);
                assertTrue(VhostUser.has(pf, VhostUser.PF_MQ) && VhostUser.has(pf, VhostUser.PF_RARP));
                c.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(pf));
                c.replyAck(true);
                assertEquals(4, c.getU64(VhostUser.GET_QUEUE_NUM));
            }
        } finally {
            p.destroyForcibly();
            p.waitFor(20, TimeUnit.SECONDS);
        }
    }

    private Process start(List<String> args, String log) throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = new java.util.ArrayList<>(List.of(java.toString(), "-Xmx128m", "-cp",
                FerryRunProcess.classPath(), "dev.ferry.vmm.Ferry"));
        cmd.addAll(args);
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve(log).toFile()).start();
    }

    private String awaitLine(Process p, String log) throws Exception {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!Files.readString(dir.resolve(log)).contains("listening on")) {
            assertTrue(p.isAlive() && System.nanoTime() < deadline, Files.readString(dir.resolve(log)));
            Thread.sleep(20);
        }
        return Files.readString(dir.resolve(log));
    }

    @Test
    void servesAFrontEndAndStopsCleanlyOnSigterm() throws Exception {
        Path img = dir.resolve("disk.img");
        Files.write(img, new byte[1 << 20]);
        Path sock = dir.resolve("vub.sock");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(List.of(java.toString(), "-Xmx128m", "-cp", FerryRunProcess.classPath(),
                "dev.ferry.vmm.Ferry", "vhost-user", "serve", "--blk", img.toString(), "--socket", sock.toString()))
                .redirectErrorStream(true).redirectOutput(dir.resolve("serve.log").toFile()).start();
        try {
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!Files.readString(dir.resolve("serve.log")).contains("listening on")) {
                assertTrue(p.isAlive() && System.nanoTime() < deadline, Files.readString(dir.resolve("serve.log")));
                Thread.sleep(20);
            }
            String line = Files.readString(dir.resolve("serve.log"));
            assertTrue(line.contains("ferry vhost-user serve: vhost-user-blk on " + img + " (1048576 bytes, 1 queue(s)), "
                    + "listening on " + sock), line);
            try (BackendConnection c = BackendConnection.connect(sock, "test", 5_000)) {
                long f = c.getU64(VhostUser.GET_FEATURES);
                assertTrue(VhostUser.has(f, VhostUser.F_LOG_ALL) && VhostUser.has(f, VhostUser.F_PROTOCOL_FEATURES));
                c.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(c.getU64(VhostUser.GET_PROTOCOL_FEATURES)));
                try (VhostUserMessage r = c.call(VhostUser.GET_CONFIG, Payloads.config(new Payloads.Config(0, 8, 0, new byte[8])))) {
                    assertEquals(2048, ByteBuffer.wrap(Payloads.config(r).data()).order(ByteOrder.LITTLE_ENDIAN).getLong(),
                            "capacity in sectors");
                }
            }
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "serve did not stop on SIGTERM");
            assertFalse(Files.exists(sock), "the socket file is removed on SIGTERM");
        } finally {
            p.destroyForcibly();
        }
    }
}
