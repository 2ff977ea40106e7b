package dev.ferry.vhostuser.backend;

import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The back-end library against a small front-end over a real socket ({@link BlkTestFrontend}):
 * negotiation, a ring with real requests on a temp image, the vring base, the dirty log, disable,
 * malformed requests, the inflight region, device state, and each injected fault.
 */
class VhostUserBackendTest {
    private static final int SECTORS = 2048; // 1 MiB image
    @TempDir
    Path dir;
    Path image;
    Path socket;
    VhostUserBackend backend;

    @BeforeEach
    void image() throws IOException {
        image = dir.resolve("disk.img");
        byte[] b = new byte[SECTORS * 512];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (i / 512 + i * 7);
        }
        Files.write(image, b);
        socket = dir.resolve("vub.sock");
    }

    @AfterEach
    void stop() {
        if (backend != null) {
            backend.close();
        }
    }

    private VhostUserBackend serve(Set<BackendFaults> faults) throws IOException {
        backend = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(socket).withFaults(faults));
        return backend;
    }

    private byte[] sector(long s) throws IOException {
        byte[] all = Files.readAllBytes(image);
        return Arrays.copyOfRange(all, (int) s * 512, (int) s * 512 + 512);
    }

    private void fill(BlkTestFrontend fe, int slot, int seed) {
        byte[] d = new byte[4096];
        for (int i = 0; i < d.length; i++) {
            d[i] = (byte) (seed + i * 13);
        }
        fe.dm.write(BlkTestFrontend.DATA + slot * 4096L, d, 0, d.length);
    }

    @Test
    void negotiatesAndServesReadsAndWritesThroughTheRing() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate();
            assertTrue(VhostUser.has(fe.protocol, VhostUser.PF_LOG_SHMFD), "a migratable back-end offers LOG_SHMFD");
            assertTrue(VhostUser.has(fe.features, VhostUser.F_PROTOCOL_FEATURES));
            try (VhostUserMessage c = fe.conn.call(VhostUser.GET_CONFIG,
                    Payloads.config(new Payloads.Config(0, 60, 0, new byte[60])))) {
                Payloads.Config cfg = Payloads.config(c);
                assertEquals(60, cfg.size());
                assertEquals(SECTORS, ByteBuffer.wrap(cfg.data()).order(ByteOrder.LITTLE_ENDIAN).getLong(0), "capacity");
            }
            fe.startRing();
            fill(fe, 0, 5);
            fe.write(0, 10, 8);
            fe.read(1, 100, 2);
            fe.kick();
            List<DriverQueue.Used> used = fe.awaitUsed(2);
            assertEquals(0, fe.status(0));
            assertEquals(0, fe.status(1));
            byte[] page = new byte[4096];
            fe.dm.read(BlkTestFrontend.DATA, page, 0, 4096);
            assertArrayEquals(Arrays.copyOfRange(page, 0, 512), sector(10), "the write reached the image");
            byte[] read = new byte[1024];
            fe.dm.read(BlkTestFrontend.DATA + 4096, read, 0, 1024);
            assertArrayEquals(sector(100), Arrays.copyOfRange(read, 0, 512), "the read brought the image's sector");
            assertEquals(1 + 1025, used.stream().mapToLong(DriverQueue.Used::length).sum(),
                    "bytes written: the write's status, the read's 1024 bytes and status");
            assertTrue(fe.call.consumeOrZero() > 0, "the call eventfd was signalled");
            assertEquals(2, fe.getVringBase(), "GET_VRING_BASE returns last_avail_idx");
        }
    }

    @Test
    void getVringBaseStopsTheRingAndAResumedRingContinuesAtTheBase() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate().startRing();
            for (int i = 0; i < 3; i++) {
                fe.read(i, i, 1);
            }
            fe.kick();
            fe.awaitUsed(3);
            assertEquals(3, fe.getVringBase());
            assertEquals(3, backend.stats().baseReturned(0));
            // The ring is stopped: a request made available now is not served.
            fe.read(3, 3, 1);
            fe.kick();
            Thread.sleep(200);
            assertEquals(0xff, fe.status(3), "a stopped ring is not served");
            // Restart at the returned base, as a migration destination does: the pending request runs.
            fe.startRing(3, false);
            fe.kick();
            fe.awaitUsed(1);
            assertEquals(0, fe.status(3));
            assertEquals(4, fe.getVringBase());
        }
    }

    @Test
    void aSecondFrontEndOnTheSameMemoryResumesAtTheSavedBase() throws Exception {
        serve(BackendFaults.none());
        BlkTestFrontend src = new BlkTestFrontend(socket);
        try {
            src.negotiate().startRing();
            src.read(0, 0, 1);
            src.read(1, 1, 1);
            src.kick();
            src.awaitUsed(2);
            int base = src.getVringBase();
            src.read(2, 2, 1); // made available after the stop: the destination must serve it
            src.conn.close();
            awaitDisconnected();
            try (BlkTestFrontend dst = new BlkTestFrontend(socket, src.memory)) {
                dst.queue = src.queue;
                dst.ring = src.ring;
                dst.negotiate().startRing(base, false);
                dst.kick();
                src.awaitUsed(1);
                assertEquals(0, src.status(2));
                assertEquals(base, backend.stats().baseSet(0));
                assertEquals(3, dst.getVringBase());
            }
        } finally {
            src.close();
        }
    }

    private void awaitDisconnected() throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (backend.connected()) {
            assertTrue(System.nanoTime() < deadline, "the back-end did not see the hang-up");
            Thread.sleep(5);
        }
    }

    /** Pages that changed while logging was on: all must be in the log (used ring included). */
    private static Set<Long> unlogged(Set<Long> changed, Set<Long> logged) {
        Set<Long> missing = new TreeSet<>(changed);
        missing.removeAll(logged);
        return missing;
    }

    @Test
    void theDirtyLogHoldsEveryPageTheBackEndWroteIncludingTheUsedRing() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate().startRing();
            fe.startLogging();
            assertTrue(backend.stats().logAllSeen());
            for (int i = 0; i < 8; i++) {
                fe.read(i, 50 + i * 8, 8);
            }
            byte[][] before = fe.snapshot();
            fe.harvestLog();
            fe.kick();
            fe.awaitUsed(8);
            Set<Long> changed = fe.changedPages(before);
            Set<Long> logged = fe.harvestLog();
            assertTrue(changed.size() >= 10, "8 data pages, the status page and the ring page changed: " + changed);
            assertEquals(Set.of(), unlogged(changed, logged), "pages written but not logged");
            assertTrue(logged.contains(fe.ring.usedGpa() >>> 12), "the used ring's page is logged");
        }
    }

    @Test
    void logOmitLeavesDataPagesOutOfTheLog() throws Exception {
        serve(EnumSet.of(BackendFaults.LOG_OMIT));
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate().startRing();
            fe.startLogging();
            fe.read(0, 7, 8);
            byte[][] before = fe.snapshot();
            fe.harvestLog();
            fe.kick();
            fe.awaitUsed(1);
            Set<Long> missing = unlogged(fe.changedPages(before), fe.harvestLog());
            assertTrue(missing.contains(BlkTestFrontend.DATA >>> 12), "the data page is missing from the log: " + missing);
        }
    }

    @Test
    void wrongVringBaseAnswersAnIndexTheRingNeverReached() throws Exception {
        serve(EnumSet.of(BackendFaults.WRONG_VRING_BASE));
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate().startRing();
            fe.read(0, 0, 1);
            fe.kick();
            fe.awaitUsed(1);
            assertEquals(2, fe.getVringBase(), "the faulty back-end answers one past last_avail_idx 1");
            assertEquals(1, backend.stats().baseReturned(0));
        }
    }

    private void disableThenKick(BlkTestFrontend fe) throws Exception {
        fe.negotiate().startRing();
        fe.read(0, 0, 1);
        fe.kick();
        fe.awaitUsed(1);
        fe.enable(false);
        fe.read(1, 1, 1);
        byte[][] before = fe.snapshot();
        fe.kick();
        Thread.sleep(300);
        if (fe.changedPages(before).isEmpty()) {
            return;
        }
        throw new WritesAfterDisable(fe.changedPages(before));
    }

    static final class WritesAfterDisable extends Exception {
        WritesAfterDisable(Set<Long> pages) {
            super("guest pages written after SET_VRING_ENABLE 0: " + pages);
        }
    }

    @Test
    void aDisabledRingIsNotWrittenAndServesAgainWhenEnabled() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            disableThenKick(fe);
            assertEquals(0xff, fe.status(1));
            fe.enable(true);
            fe.awaitUsed(1);
            assertEquals(0, fe.status(1));
        }
    }

    @Test
    void writeAfterDisableKeepsServingADisabledRing() throws Exception {
        serve(EnumSet.of(BackendFaults.WRITE_AFTER_DISABLE));
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            assertThrows(WritesAfterDisable.class, () -> disableThenKick(fe));
        }
    }

    @Test
    void malformedRequestsAreRefusedAndTheBackEndServesTheNextFrontEnd() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate();
            record Bad(int request, byte[] payload) {
            }
            List<Bad> bad = List.of(
                    new Bad(VhostUser.SET_VRING_NUM, Payloads.vringState(0, 100)),         // not a power of two
                    new Bad(VhostUser.SET_VRING_NUM, Payloads.vringState(0, 4096)),        // above the maximum
                    new Bad(VhostUser.SET_VRING_NUM, Payloads.vringState(7, 128)),         // no such queue
                    new Bad(VhostUser.SET_VRING_NUM, new byte[5]),                         // wrong size
                    new Bad(VhostUser.SET_VRING_BASE, Payloads.vringState(0, 0x10000)),    // not a u16
                    new Bad(VhostUser.SET_VRING_ADDR, Payloads.vringAddr(new Payloads.VringAddr(0, 2, 0, 0, 0, 0))),
                    new Bad(VhostUser.SET_FEATURES, Payloads.u64(1L << 63)),               // not offered
                    new Bad(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(1L << 40)),
                    new Bad(VhostUser.SET_CONFIG, Payloads.config(new Payloads.Config(0, 16, 0, new byte[16]))),
                    new Bad(VhostUser.SEND_RARP, Payloads.u64(0)),                         // not offered for blk
                    new Bad(99, new byte[0]));                                             // unknown
            for (Bad b : bad) {
                VhostUserException e = assertThrows(VhostUserException.class, () -> fe.conn.request(b.request(), b.payload()),
                        VhostUser.requestName(b.request()));
                assertTrue(e.getMessage().contains("status 1"), e.getMessage());
            }
            assertEquals(bad.size(), backend.stats().refused());
            // A ring whose addresses lie outside the memory table is refused at KICK.
            fe.conn.request(VhostUser.SET_VRING_NUM, Payloads.vringState(0, 128));
            fe.conn.request(VhostUser.SET_VRING_ADDR, Payloads.vringAddr(new Payloads.VringAddr(0, 0, 0x1000, 0x2000, 0x3000, 0)));
            assertThrows(VhostUserException.class, () -> fe.conn.request(VhostUser.SET_VRING_KICK, Payloads.u64(0), fe.kick.fd()));
            assertTrue(backend.stats().lastRefusal().contains("not inside the memory table"), backend.stats().lastRefusal());
            // A kick "eventfd" that is a pipe is refused.
            dev.ferry.core.sys.Fd[] pipe = dev.ferry.core.sys.Sys.pipe(dev.ferry.core.sys.Linux.O_CLOEXEC);
            try {
                assertThrows(VhostUserException.class, () -> fe.conn.request(VhostUser.SET_VRING_CALL, Payloads.u64(0), pipe[0]));
                assertTrue(backend.stats().lastRefusal().contains("not an eventfd"), backend.stats().lastRefusal());
            } finally {
                pipe[0].close();
                pipe[1].close();
            }
            // Broken framing (version 2) ends the connection.
            fe.conn.channel().send(new VhostUserMessage(VhostUser.GET_FEATURES, 2, new byte[0]));
            assertThrows(VhostUserException.class, () -> fe.conn.channel().receive(2_000));
        }
        awaitDisconnected();
        assertTrue(backend.stats().lastDisconnect().contains("version"), backend.stats().lastDisconnect());
        try (BlkTestFrontend next = new BlkTestFrontend(socket)) {
            next.negotiate().startRing();
            next.read(0, 1, 1);
            next.kick();
            next.awaitUsed(1);
            assertEquals(0, next.status(0));
            assertEquals(2, backend.stats().connections());
        }
    }

    @Test
    void aDriverThatBreaksTheRingGetsNeedsResetNotACrash() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate().startRing();
            // avail.idx far ahead of anything the ring can hold.
            fe.dm.writeU16(fe.ring.availGpa() + 2, 1000);
            fe.kick();
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (backend.stats().lastDeviceError() == null) {
                assertTrue(System.nanoTime() < deadline, "no device error reported");
                Thread.sleep(5);
            }
            assertEquals(64, fe.conn.getU64(VhostUser.GET_STATUS) & 64, "GET_STATUS shows NEEDS_RESET");
            fe.conn.request(VhostUser.RESET_DEVICE, new byte[0]);
            assertEquals(0, fe.conn.getU64(VhostUser.GET_STATUS));
        }
    }

    @Test
    void theInflightRegionTracksWhatTheBackEndHolds() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate();
            dev.ferry.core.sys.Fd fd;
            Payloads.Inflight info;
            try (VhostUserMessage r = fe.conn.call(VhostUser.GET_INFLIGHT_FD,
                    Payloads.inflight(new Payloads.Inflight(0, 0, 1, BlkTestFrontend.QUEUE_SIZE)))) {
                info = Payloads.inflight(r);
                assertEquals(1, r.fdCount());
                fd = r.takeFd(0);
            }
            assertEquals(InflightRegion.queueBytes(BlkTestFrontend.QUEUE_SIZE), info.mmapSize());
            fe.conn.request(VhostUser.SET_INFLIGHT_FD, Payloads.inflight(info), fd);
            try (dev.ferry.core.sys.Mapping map = dev.ferry.core.sys.Mapping.shared(fd, 0, info.mmapSize())) {
                long b = map.address();
                assertEquals(1, dev.ferry.core.sys.NativeMemory.getShort(b + 8), "version");
                assertEquals(BlkTestFrontend.QUEUE_SIZE, dev.ferry.core.sys.NativeMemory.getShort(b + 10), "desc_num");
                fe.startRing();
                for (int i = 0; i < 4; i++) {
                    fe.read(i, i, 1);
                }
                fe.kick();
                fe.awaitUsed(4);
                fe.getVringBase(); // drained: nothing in flight, used_idx published
                assertEquals(4, dev.ferry.core.sys.NativeMemory.getShort(b + 14), "used_idx");
                for (int d = 0; d < BlkTestFrontend.QUEUE_SIZE; d++) {
                    assertEquals(0, dev.ferry.core.sys.NativeMemory.getByte(b + 16 + d * 16L), "desc " + d + " in flight");
                }
                long counters = 0;
                for (int d = 0; d < BlkTestFrontend.QUEUE_SIZE; d++) {
                    counters += dev.ferry.core.sys.NativeMemory.getLong(b + 16 + d * 16L + 8) != 0 ? 1 : 0;
                }
                assertTrue(counters >= 1, "popped heads got counters");
            } finally {
                fd.close();
            }
        }
    }

    /**
     * A back-end that died holding head A while it had completed the later head B out of order:
     * the front-end sets the vring base to the used index (QEMU after a back-end crash) and hands
     * the inflight region to the next back-end, which must serve A — not B again, which a plain
     * restart from the used index would re-execute and complete twice.
     */
    @Test
    void aRestartedBackEndResubmitsWhatTheInflightRegionHolds() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate();
            dev.ferry.core.sys.Fd fd;
            Payloads.Inflight info;
            try (VhostUserMessage r = fe.conn.call(VhostUser.GET_INFLIGHT_FD,
                    Payloads.inflight(new Payloads.Inflight(0, 0, 1, BlkTestFrontend.QUEUE_SIZE)))) {
                info = Payloads.inflight(r);
                fd = r.takeFd(0);
            }
            try (fd; dev.ferry.core.sys.Mapping map = dev.ferry.core.sys.Mapping.shared(fd, 0, info.mmapSize())) {
                fe.conn.request(VhostUser.SET_INFLIGHT_FD, Payloads.inflight(info), fd);
                fe.startRing();
                fe.read(0, 0, 1);
                fe.kick();
                fe.awaitUsed(1);
                fe.conn.close(); // the back-end "dies" here; the test plays the dead one's last moves
                awaitDisconnected();
                int a = fe.read(1, 20, 1);   // avail index 1
                int b = fe.read(2, 21, 1);   // avail index 2
                long base = map.address();
                long used = fe.ring.usedGpa();
                // The dead back-end popped A and B, completed and published B only.
                fe.dm.writeU32(used + 4 + 8L * 1, b);
                fe.dm.writeU32(used + 4 + 8L * 1 + 4, 1);
                fe.dm.writeU8(BlkTestFrontend.STATUS + 2, 0);
                fe.dm.writeU16(used + 2, 2);
                long counter = 50;
                for (int head : new int[] {a, b}) {
                    long d = base + 16 + head * 16L;
                    dev.ferry.core.sys.NativeMemory.putByte(d, (byte) (head == a ? 1 : 0));
                    dev.ferry.core.sys.NativeMemory.putLong(d + 8, ++counter);
                }
                dev.ferry.core.sys.NativeMemory.putShort(base + 12, (short) b);
                dev.ferry.core.sys.NativeMemory.putShort(base + 14, (short) 2);
                assertEquals(b, fe.awaitUsed(1).get(0).id(), "the driver sees B complete");

                try (BlkTestFrontend next = new BlkTestFrontend(socket, fe.memory)) {
                    next.queue = fe.queue;
                    next.ring = fe.ring;
                    next.negotiate();
                    next.conn.request(VhostUser.SET_INFLIGHT_FD, Payloads.inflight(info), fd);
                    next.startRing(2, false); // QEMU: last_avail := used.idx after a back-end crash
                    next.kick();
                    List<DriverQueue.Used> done = fe.awaitUsed(1);
                    assertEquals(a, done.get(0).id(), "A, which the dead back-end held, is served");
                    assertEquals(0, fe.status(1));
                    assertEquals(1, backend.stats().resubmitted());
                    Thread.sleep(100);
                    assertEquals(null, fe.queue.pollUsed(), "B is not completed a second time");
                    assertEquals(3, next.getVringBase(), "the ring goes on after A and B");
                    assertEquals(0, dev.ferry.core.sys.NativeMemory.getByte(base + 16 + a * 16L), "A left the region");
                }
            }
        }
    }

    @Test
    void deviceStateRoundTripsThroughThePipeAndGarbageIsRefused() throws Exception {
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate();
            dev.ferry.core.sys.Fd[] pipe = dev.ferry.core.sys.Sys.pipe(dev.ferry.core.sys.Linux.O_CLOEXEC);
            try (VhostUserMessage r = fe.conn.call(VhostUser.SET_DEVICE_STATE_FD,
                    Payloads.deviceStateTransfer(new Payloads.DeviceStateTransfer(VhostUser.TRANSFER_SAVE, 0)), pipe[1])) {
                assertEquals(VhostUser.DEVICE_STATE_NOFD, Payloads.u64(r), "success, no fd returned");
            }
            pipe[1].close();
            long buf = dev.ferry.core.sys.NativeMemory.allocate(4096);
            byte[] state;
            try {
                long n = dev.ferry.core.sys.Sys.read(pipe[0], buf, 4096);
                state = new byte[(int) n];
                dev.ferry.core.sys.NativeMemory.copyToArray(buf, state, 0, (int) n);
                assertEquals(0, dev.ferry.core.sys.Sys.read(pipe[0], buf, 4096), "the back-end closed its end: EOF");
            } finally {
                dev.ferry.core.sys.NativeMemory.free(buf);
                pipe[0].close();
            }
            assertArrayEquals(new byte[] {0}, state, "virtio-blk with nothing parked saves its end marker");
            assertEquals(0, fe.conn.getU64(VhostUser.CHECK_DEVICE_STATE));
            assertEquals(0, load(fe, state), "the saved state loads");
            assertEquals(1, load(fe, new byte[] {7, 7}), "garbage is refused");
        }
    }

    private static long load(BlkTestFrontend fe, byte[] state) throws Exception {
        dev.ferry.core.sys.Fd[] pipe = dev.ferry.core.sys.Sys.pipe(dev.ferry.core.sys.Linux.O_CLOEXEC);
        try (VhostUserMessage r = fe.conn.call(VhostUser.SET_DEVICE_STATE_FD,
                Payloads.deviceStateTransfer(new Payloads.DeviceStateTransfer(VhostUser.TRANSFER_LOAD, 0)), pipe[0])) {
            assertEquals(VhostUser.DEVICE_STATE_NOFD, Payloads.u64(r));
        }
        pipe[0].close();
        long buf = dev.ferry.core.sys.NativeMemory.allocate(state.length);
        try {
            dev.ferry.core.sys.NativeMemory.copyFromArray(state, 0, buf, state.length);
            dev.ferry.core.sys.Sys.write(pipe[1], buf, state.length);
        } finally {
            dev.ferry.core.sys.NativeMemory.free(buf);
            pipe[1].close();
        }
        return fe.conn.getU64(VhostUser.CHECK_DEVICE_STATE);
    }

    /** One whole session — table, ring, log, inflight region, I/O — leaves no fd or mapping behind once it ends. */
    @Test
    void aSessionLeavesNoFdBehind() throws Exception {
        serve(BackendFaults.none());
        Runnable session = () -> {
            try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
                fe.negotiate();
                try (VhostUserMessage r = fe.conn.call(VhostUser.GET_INFLIGHT_FD,
                        Payloads.inflight(new Payloads.Inflight(0, 0, 1, BlkTestFrontend.QUEUE_SIZE)));
                     dev.ferry.core.sys.Fd region = r.takeFd(0)) {
                    fe.conn.request(VhostUser.SET_INFLIGHT_FD, Payloads.inflight(Payloads.inflight(r)), region);
                }
                fe.startRing();
                fe.startLogging();
                fe.read(0, 1, 1);
                fe.write(1, 2, 1);
                fe.kick();
                fe.awaitUsed(2);
                fe.getVringBase();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        };
        session.run(); // warm-up
        awaitDisconnected();
        FdLeakCheck leaks = FdLeakCheck.start();
        session.run();
        awaitDisconnected();
        leaks.assertNoLeaks();
    }

    @Test
    void clientModeConnectsToAListeningFrontEndAndLeaksNoFds() throws Exception {
        // warm up once so lazily opened JDK resources are open before counting
        serve(BackendFaults.none());
        try (BlkTestFrontend fe = new BlkTestFrontend(socket)) {
            fe.negotiate().startRing();
        }
        backend.close();
        backend = null;
        FdLeakCheck leaks = FdLeakCheck.start();
        Path front = dir.resolve("front.sock");
        dev.ferry.core.sys.Fd listener = dev.ferry.core.sys.Sockets.unixListen(front, 1);
        try (VhostUserBackend client = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.client(front))) {
            dev.ferry.core.sys.Fd conn = dev.ferry.core.sys.Sockets.accept(listener);
            try (dev.ferry.vhostuser.proto.BackendConnection c = new dev.ferry.vhostuser.proto.BackendConnection(
                    new dev.ferry.vhostuser.proto.VhostUserChannel(conn, "client back-end"), 5_000)) {
                assertNotEquals(0, c.getU64(VhostUser.GET_FEATURES) & VhostUser.bit(VhostUser.F_LOG_ALL));
            }
            // It reconnects after the front-end hung up.
            dev.ferry.core.sys.Fd again = dev.ferry.core.sys.Sockets.accept(listener);
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (client.stats().connections() < 2) {
                assertTrue(System.nanoTime() < deadline, "the client back-end did not reconnect");
                Thread.sleep(5);
            }
            again.close();
        } finally {
            listener.close();
            Files.deleteIfExists(front);
        }
        Thread.sleep(100);
        leaks.assertNoLeaks();
        assertFalse(Files.exists(socket), "the server socket was removed at close");
    }
}
