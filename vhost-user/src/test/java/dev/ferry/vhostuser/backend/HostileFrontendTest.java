package dev.ferry.vhostuser.backend;

import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A front-end that sends whatever it likes: random requests, payloads and descriptors after a
 * real negotiation, memory tables pulled from under running rings. The back-end must refuse or
 * drop, never crash, leak or write outside the memory it was given, and serve the next front-end.
 */
class HostileFrontendTest {
    @TempDir
    Path dir;
    VhostUserBackend backend;
    Path socket;

    @BeforeEach
    void serve() throws Exception {
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        socket = dir.resolve("s.sock");
        backend = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(socket));
    }

    @AfterEach
    void stop() {
        backend.close();
    }

    private void awaitDisconnected() throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (backend.connected()) {
            assertTrue(System.nanoTime() < deadline, "the back-end did not drop the connection");
            Thread.sleep(5);
        }
    }

    private void stillServes() throws Exception {
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate().startRing();
            fe.read(0, 1, 1);
            fe.kick();
            fe.awaitUsed(1);
            assertEquals(0, fe.status(0));
        }
        awaitDisconnected();
    }

    @Test
    void randomRequestsNeverCrashTheBackEndNorLeakItsFds() throws Exception {
        stillServes(); // warm-up before counting fds
        FdLeakCheck leaks = FdLeakCheck.start();
        Random rnd = new Random(11);
        int[] requests = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 24, 25, 31, 32, 34, 36,
                37, 38, 39, 40, 42, 43, 0, 77, 1000};
        int connections = 0;
        int sent = 0;
        int dropped = 0;
        for (int round = 0; round < 80; round++) {
            try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
                connections++;
                fe.negotiate().startRing();
                for (int i = 0; i < 250 && fe.conn.channel().brokenReason() == null; i++) {
                    int req = requests[rnd.nextInt(requests.length)];
                    byte[] payload = new byte[rnd.nextInt(4) == 0 ? rnd.nextInt(64) : new int[] {0, 8, 12, 16, 24, 40, 72}[rnd.nextInt(7)]];
                    ByteBuffer b = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
                    while (b.remaining() >= 4) {
                        b.putInt(rnd.nextInt(3) == 0 ? rnd.nextInt() : rnd.nextInt(300));
                    }
                    int nfds = rnd.nextInt(5) == 0 ? rnd.nextInt(3) : 0;
                    Fd[] fds = new Fd[nfds];
                    for (int k = 0; k < nfds; k++) {
                        fds[k] = rnd.nextBoolean() ? fe.kick.fd() : fe.memory.regions().get(0).memfd();
                    }
                    int flags = VhostUser.VERSION | (rnd.nextBoolean() ? VhostUser.FLAG_NEED_REPLY : 0);
                    try {
                        fe.conn.channel().send(new VhostUserMessage(req, flags, payload, fds));
                        sent++;
                        // A probe with its own reply: whatever comes before its answer answers the random message.
                        fe.conn.channel().send(VhostUserMessage.request(VhostUser.GET_FEATURES, false, new byte[0]));
                        while (true) {
                            try (VhostUserMessage r = fe.conn.channel().receive(5_000)) {
                                assertEquals(VhostUser.VERSION | VhostUser.FLAG_REPLY, r.flags(), "reply flags exactly 0x5");
                                if (r.request() == VhostUser.GET_FEATURES && r.size() == 8) {
                                    break;
                                }
                            }
                        }
                    } catch (VhostUserException.Timeout e) {
                        throw new AssertionError("the back-end hung on " + VhostUser.requestName(req), e);
                    } catch (VhostUserException e) {
                        dropped++;
                        break; // the back-end dropped the connection
                    }
                }
            }
            awaitDisconnected();
        }
        stillServes();
        assertTrue(sent > 400, "only " + sent + " random messages went out");
        assertTrue(backend.stats().refused() > sent / 3, backend.stats().toString());
        assertTrue(backend.stats().connections() >= connections + 2);
        leaks.assertNoLeaks();
    }

    /** Features (all offered but LOG_ALL), every offered protocol feature with REPLY_ACK on, no memory yet. */
    private static void negotiateWithoutLogging(BlkTestFrontend fe) throws Exception {
        long offered = fe.conn.getU64(VhostUser.GET_FEATURES);
        fe.features = offered & ~VhostUser.bit(VhostUser.F_LOG_ALL);
        fe.protocol = fe.conn.getU64(VhostUser.GET_PROTOCOL_FEATURES);
        fe.conn.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(fe.protocol));
        fe.conn.replyAck(true);
        fe.conn.request(VhostUser.SET_FEATURES, Payloads.u64(fe.features));
    }

    @Test
    void aRegionRemovedUnderARunningRingNeverLetsTheDeviceWriteThere() throws Exception {
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            negotiateWithoutLogging(fe);
            assertEquals(MemoryTable.MAX_SLOTS, fe.conn.getU64(VhostUser.GET_MAX_MEM_SLOTS));
            for (GuestRegion r : fe.memory.regions()) {
                fe.conn.request(VhostUser.ADD_MEM_REG, Payloads.singleRegion(new Payloads.MemRegion(r.gpaBase(), r.size(),
                        BlkTestFrontend.USER_BASE + r.gpaBase(), 0)), r.memfd());
            }
            fe.startRing();
            fe.read(0, 3, 1);
            fe.kick();
            fe.awaitUsed(1);
            assertEquals(0, fe.status(0));
            GuestRegion high = fe.memory.regions().get(1);
            fe.conn.request(VhostUser.REM_MEM_REG, Payloads.singleRegion(new Payloads.MemRegion(high.gpaBase(),
                    high.size(), BlkTestFrontend.USER_BASE + high.gpaBase(), 0)));
            byte[] before = new byte[4096];
            fe.memory.read(dev.ferry.core.memory.Gpa.of(BlkTestFrontend.DATA + 4096), before, 0, 4096);
            fe.read(1, 4, 1); // its data buffer lies in the removed region
            fe.kick();
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (fe.status(1) == 0xff && backend.stats().lastDeviceError() == null) {
                assertTrue(System.nanoTime() < deadline, "the request neither completed nor broke the device");
                Thread.sleep(5);
            }
            byte[] after = new byte[4096];
            fe.memory.read(dev.ferry.core.memory.Gpa.of(BlkTestFrontend.DATA + 4096), after, 0, 4096);
            assertTrue(java.util.Arrays.equals(before, after), "nothing was written into the removed region");
            assertTrue(fe.status(1) == 0xff || fe.status(1) == 1, "the request completed OK into memory it lost");
            // the table still works for the ring in the low region: the status page is there
            assertEquals(1, backend.stats().connections());
        }
        awaitDisconnected();
        stillServes();
    }

    /**
     * QEMU 7.2 with a multiqueue vhost-user-net has one {@code vhost_dev} per queue pair on the one
     * connection, and each sends ADD_MEM_REG for every region it has not added itself: the same
     * region arrives once per pair (seen with Linux's virtio_net and two pairs; QEMU 8.0 sends it
     * once). Refusing the second made QEMU fall back to "userspace virtio", which a vhost-user
     * netdev cannot, and the NIC never ran. The back-end takes an identical region as one more
     * holder of the mapping it has and unmaps it at the last REM_MEM_REG; an overlap that is not
     * the same region is still refused.
     */
    @Test
    void aRegionAddedOncePerQueuePairIsMappedOnceAndKeptUntilItsLastRemoval() throws Exception {
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            negotiateWithoutLogging(fe);
            for (int pair = 0; pair < 2; pair++) {
                for (GuestRegion r : fe.memory.regions()) {
                    fe.conn.request(VhostUser.ADD_MEM_REG, Payloads.singleRegion(new Payloads.MemRegion(r.gpaBase(),
                            r.size(), BlkTestFrontend.USER_BASE + r.gpaBase(), 0)), r.memfd());
                }
            }
            GuestRegion low = fe.memory.regions().get(0);
            GuestRegion high = fe.memory.regions().get(1);
            assertThrowsNack(() -> fe.conn.request(VhostUser.ADD_MEM_REG, Payloads.singleRegion(new Payloads.MemRegion(
                    low.gpaBase(), low.size() / 2, BlkTestFrontend.USER_BASE + low.gpaBase(), 0)), low.memfd()));
            assertTrue(backend.stats().lastRefusal().contains("overlaps"), backend.stats().lastRefusal());
            fe.startRing();
            fe.read(0, 3, 1);
            fe.kick();
            fe.awaitUsed(1);
            assertEquals(0, fe.status(0));
            Payloads.MemRegion highEntry = new Payloads.MemRegion(high.gpaBase(), high.size(),
                    BlkTestFrontend.USER_BASE + high.gpaBase(), 0);
            fe.conn.request(VhostUser.REM_MEM_REG, Payloads.singleRegion(highEntry));
            fe.read(1, 4, 1); // its data buffer lies in the region one pair still holds
            fe.kick();
            fe.awaitUsed(1);
            assertEquals(0, fe.status(1), "the read into the region still held completed: " + backend.stats());
            assertEquals(null, backend.stats().lastDeviceError());
            fe.conn.request(VhostUser.REM_MEM_REG, Payloads.singleRegion(highEntry));
            assertThrowsNack(() -> fe.conn.request(VhostUser.REM_MEM_REG, Payloads.singleRegion(highEntry)));
            assertTrue(backend.stats().lastRefusal().contains("is not in the memory table"),
                    "the last holder's removal unmapped it: " + backend.stats().lastRefusal());
        }
        awaitDisconnected();
        stillServes();
    }

    @Test
    void twoQueuesOfferMqAndAreServedIndependently() throws Exception {
        backend.close();
        Path image = dir.resolve("disk.img");
        backend = VhostUserBackend.serveBlk(new BlkOptions(image, false, 2, 256, 32, 2,
                BlkOptions.ErrorPolicy.REPORT, BlkOptions.ErrorPolicy.REPORT, "mq"), BackendOptions.server(socket));
        try (BackendConnection c = BackendConnection.connect(socket, "mq", 5_000)) {
            long p = c.getU64(VhostUser.GET_PROTOCOL_FEATURES);
            assertTrue(VhostUser.has(p, VhostUser.PF_MQ));
            c.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(p));
            assertEquals(2, c.getU64(VhostUser.GET_QUEUE_NUM));
            c.replyAck(true);
            assertThrowsNack(() -> c.request(VhostUser.SET_VRING_NUM, Payloads.vringState(2, 128)));
            try (EventFd e = new EventFd(Linux.EFD_NONBLOCK)) {
                assertThrowsNack(() -> c.request(VhostUser.SET_VRING_CALL, Payloads.u64(2), e.fd()));
            }
            c.request(VhostUser.SET_VRING_NUM, Payloads.vringState(1, 128));
        }
    }

    private interface Call {
        void run() throws Exception;
    }

    private static void assertThrowsNack(Call c) {
        try {
            c.run();
        } catch (Exception e) {
            assertTrue(e.getMessage().contains("status 1"), e.getMessage());
            return;
        }
        throw new AssertionError("accepted");
    }

}
