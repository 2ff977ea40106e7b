package dev.ferry.vhostuser.proto;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sockets;
import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The framing over a real socket pair: descriptors travel with the header, and a peer that sends
 * garbage, a wrong size, too many descriptors, hangs up mid-message or stops answering gets a clear
 * error — and leaks no descriptor into this process.
 */
class VhostUserChannelTest {
    private VhostUserChannel ours;
    private Fd theirs;
    private FdLeakCheck leaks;

    @BeforeEach
    void pair() {
        Fd[] p = Sockets.unixPair("test pair"); // warm-up: the first pair opens nothing else
        p[0].close();
        p[1].close();
        leaks = FdLeakCheck.start();
        p = Sockets.unixPair("test pair");
        ours = new VhostUserChannel(p[0], "test peer");
        theirs = p[1];
    }

    @AfterEach
    void close() {
        ours.close();
        if (theirs != null) {
            theirs.close();
        }
        leaks.assertNoLeaks();
    }

    /** Raw bytes and descriptors from the peer, in one sendmsg. */
    private void raw(byte[] bytes, Fd... fds) {
        long b = NativeMemory.allocate(Math.max(1, bytes.length));
        try {
            NativeMemory.copyFromArray(bytes, 0, b, bytes.length);
            int[] nums = new int[fds.length];
            for (int i = 0; i < fds.length; i++) {
                nums[i] = fds[i].get();
            }
            Sockets.sendWithFds(theirs, b, bytes.length, nums);
        } finally {
            NativeMemory.free(b);
        }
    }

    private static byte[] header(int request, int flags, int size, int payloadBytes) {
        return ByteBuffer.allocate(12 + payloadBytes).order(ByteOrder.LITTLE_ENDIAN).putInt(request).putInt(flags)
                .putInt(size).array();
    }

    @Test
    void aMessageWithDescriptorsArrivesWhole() throws Exception {
        try (EventFd a = new EventFd(Linux.EFD_NONBLOCK); EventFd b = new EventFd(Linux.EFD_NONBLOCK)) {
            VhostUserChannel peer = new VhostUserChannel(theirs, "other side");
            theirs = null; // the peer's channel owns it now
            try {
                peer.send(VhostUserMessage.request(VhostUser.SET_VRING_KICK, true, Payloads.u64(3), a.fd(), b.fd()));
                try (VhostUserMessage m = ours.receive(2000)) {
                    assertEquals(VhostUser.SET_VRING_KICK, m.request());
                    assertTrue(m.needsReply());
                    assertEquals(3, Payloads.u64(m));
                    assertEquals(2, m.fdCount());
                    // The received descriptor is the same eventfd: a signal through it reaches ours.
                    try (Fd got = m.takeFd(0)) {
                        dev.ferry.core.sys.Sys.eventfdWrite(got.get(), 5);
                        assertEquals(5, a.consume());
                    }
                }
                ours.send(VhostUserMessage.reply(VhostUser.GET_FEATURES, Payloads.u64(0x1234)));
                try (VhostUserMessage r = peer.receive(2000)) {
                    assertTrue(r.isReply());
                    assertEquals(0x5, r.flags());
                    assertEquals(0x1234, Payloads.u64(r));
                }
            } finally {
                peer.close();
            }
        }
    }

    @Test
    void aPayloadLargerThanTheLimitIsRefused() {
        raw(header(VhostUser.SET_MEM_TABLE, 1, 4097, 0));
        VhostUserException e = assertThrows(VhostUserException.class, () -> ours.receive(2000));
        assertTrue(e.getMessage().contains("SET_MEM_TABLE announces a payload of 4097 bytes"), e.getMessage());
        // The stream's position is lost: the channel stays broken with the first reason.
        VhostUserException again = assertThrows(VhostUserException.Disconnected.class, () -> ours.receive(100));
        assertTrue(again.getMessage().contains("4097"), again.getMessage());
    }

    @Test
    void aWrongVersionIsRefused() {
        raw(header(VhostUser.GET_FEATURES, 2, 0, 0));
        VhostUserException e = assertThrows(VhostUserException.class, () -> ours.receive(2000));
        assertTrue(e.getMessage().contains("version 2"), e.getMessage());
    }

    @Test
    void tooManyDescriptorsAreClosedAndRefused() throws Exception {
        List<EventFd> nine = new java.util.ArrayList<>();
        try {
            for (int i = 0; i < 9; i++) {
                nine.add(new EventFd(Linux.EFD_NONBLOCK));
            }
            raw(header(VhostUser.SET_MEM_TABLE, 1, 0, 0), nine.stream().map(EventFd::fd).toArray(Fd[]::new));
            VhostUserException e = assertThrows(VhostUserException.class, () -> ours.receive(2000));
            assertTrue(e.getMessage().contains("more than 8 descriptors"), e.getMessage());
        } finally {
            nine.forEach(EventFd::close);
        }
        // leaks.assertNoLeaks() in close(): the nine received duplicates were closed.
    }

    @Test
    void aHangUpMidMessageIsADisconnectNamingWhatWasMissing() {
        raw(java.util.Arrays.copyOf(header(VhostUser.SET_VRING_ADDR, 1, 40, 0), 12 + 10));
        theirs.close();
        VhostUserException e = assertThrows(VhostUserException.Disconnected.class, () -> ours.receive(2000));
        assertTrue(e.getMessage().contains("hung up in the middle of the 40-byte payload of SET_VRING_ADDR"),
                e.getMessage());
    }

    @Test
    void aHalfHeaderThenSilenceTimesOut() {
        raw(new byte[] {1, 0, 0, 0, 1});
        long t0 = System.nanoTime();
        VhostUserException e = assertThrows(VhostUserException.Timeout.class, () -> ours.receive(300));
        assertTrue(e.getMessage().contains("the rest of a header"), e.getMessage());
        assertTrue(System.nanoTime() - t0 >= 250_000_000L, "waited the timeout");
    }

    @Test
    void aPeerThatNeverAnswersTimesOutAndOneThatClosesIsADisconnect() {
        VhostUserException e = assertThrows(VhostUserException.Timeout.class, () -> ours.receive(200));
        assertTrue(e.getMessage().contains("no answer"), e.getMessage());
        Fd[] p = Sockets.unixPair("second");
        try (VhostUserChannel c = new VhostUserChannel(p[0], "closing peer")) {
            p[1].close();
            assertThrows(VhostUserException.Disconnected.class, () -> c.receive(2000));
        }
    }

    @Test
    void closingWakesABlockedReceive() throws Exception {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(200);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            ours.close();
        });
        t.start();
        assertThrows(VhostUserException.Disconnected.class, () -> ours.receive(-1));
        t.join();
    }

    @Test
    void repliesAreCheckedByTheConnection() throws Exception {
        BackendConnection c = new BackendConnection(ours, 1000);
        // A reply with NEED_REPLY echoed (flags 0xd) is refused.
        VhostUserChannel p = new VhostUserChannel(theirs, "fake back-end");
        theirs = null;
        Thread peer = new Thread(() -> {
            try {
                try (VhostUserMessage m = p.receive(2000)) {
                    p.send(new VhostUserMessage(m.request(), 0xd, Payloads.u64(1)));
                }
                try (VhostUserMessage m = p.receive(2000)) {
                    p.send(VhostUserMessage.reply(VhostUser.GET_QUEUE_NUM, Payloads.u64(1)));
                }
                try (VhostUserMessage m = p.receive(2000)) {
                    assertTrue(m.needsReply());
                    p.send(VhostUserMessage.reply(m.request(), Payloads.u64(22)));
                }
                p.receive(5000).close(); // until our side closes
            } catch (VhostUserException ignored) {
                // the test closed the connection
            } finally {
                p.close();
            }
        });
        peer.start();
        try {
            VhostUserException flags = assertThrows(VhostUserException.class, () -> c.getU64(VhostUser.GET_FEATURES));
            assertTrue(flags.getMessage().contains("flags 0xd"), flags.getMessage());
            VhostUserException other = assertThrows(VhostUserException.class,
                    () -> c.getU64(VhostUser.GET_PROTOCOL_FEATURES));
            assertTrue(other.getMessage().contains("the reply to GET_PROTOCOL_FEATURES is GET_QUEUE_NUM"),
                    other.getMessage());
            c.replyAck(true);
            VhostUserException nack = assertThrows(VhostUserException.class,
                    () -> c.request(VhostUser.SET_VRING_NUM, Payloads.vringState(0, 256)));
            assertTrue(nack.getMessage().contains("SET_VRING_NUM failed") && nack.getMessage().contains("status 22"),
                    nack.getMessage());
        } finally {
            c.close();
            peer.join(5000);
        }
    }

    @Test
    void payloadRulesNameTheRequest() {
        byte[] table = Payloads.memTable(List.of(new Payloads.MemRegion(0, 1 << 20, 0x7f0000000000L, 0)));
        // One region but no descriptor.
        VhostUserMessage m = VhostUserMessage.request(VhostUser.SET_MEM_TABLE, false, table);
        VhostUserException e = assertThrows(VhostUserException.class, () -> Payloads.memTable(m));
        assertEquals("SET_MEM_TABLE came with 0 descriptors for 1 regions", e.getMessage());
        byte[] nine = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(9).putInt(0).array();
        e = assertThrows(VhostUserException.class,
                () -> Payloads.memTable(VhostUserMessage.request(VhostUser.SET_MEM_TABLE, false, nine)));
        assertTrue(e.getMessage().contains("announces 9 regions"), e.getMessage());
        byte[] cfg = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(250).putInt(10).putInt(0).array();
        e = assertThrows(VhostUserException.class,
                () -> Payloads.config(VhostUserMessage.request(VhostUser.GET_CONFIG, false, cfg)));
        assertTrue(e.getMessage().contains("config window offset 250 size 10"), e.getMessage());
        e = assertThrows(VhostUserException.class, () -> Payloads.vringFdIndex(
                VhostUserMessage.request(VhostUser.SET_VRING_KICK, false, Payloads.u64(5)), 2));
        assertTrue(e.getMessage().contains("names queue 5 of 2"), e.getMessage());
        Payloads.VringAddr a = new Payloads.VringAddr(1, 1, 0x1000, 0x3000, 0x2000, 0x4000);
        assertEquals(a, decode(Payloads.vringAddr(a)));
        assertArrayEquals(new byte[] {1, 2, 3, 4, 5, 6, 0, 0}, Payloads.rarp(new byte[] {1, 2, 3, 4, 5, 6}));
    }

    private static Payloads.VringAddr decode(byte[] b) {
        try {
            return Payloads.vringAddr(VhostUserMessage.request(VhostUser.SET_VRING_ADDR, false, b));
        } catch (VhostUserException e) {
            throw new AssertionError(e);
        }
    }
}
