package dev.ferry.vhostuser.frontend;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Sockets;
import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserChannel;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The front-end's end of the back-end's request channel, against a back-end played by the test
 * over real sockets: SET_BACKEND_REQ_FD carries exactly one descriptor and no payload; a
 * CONFIG_CHANGE_MSG reaches the device and, with NEED_REPLY, is answered 0; what Ferry does not
 * serve (IOTLB, host notifiers) and a config change with a payload are refused — answered 1 when
 * asked, the device not called —; a REPLY flag or a broken header breaks the channel; a back-end
 * that closes its end closes the channel.
 */
@Timeout(20)
class BackendRequestsTest {
    private VhostUserChannel backendMain;
    private BackendConnection frontendMain;
    private BackendRequests requests;
    private VhostUserChannel backendSide;
    private final AtomicInteger changes = new AtomicInteger();

    @BeforeEach
    void connect() throws Exception {
        Fd[] main = Sockets.unixPair("main");
        frontendMain = new BackendConnection(new VhostUserChannel(main[0], "front-end"), 1_000);
        backendMain = new VhostUserChannel(main[1], "back-end");
        requests = BackendRequests.open(frontendMain, "dev0", 1_000);
        try (VhostUserMessage m = backendMain.receive(1_000)) {
            assertEquals(VhostUser.SET_BACKEND_REQ_FD, m.request());
            assertEquals(0, m.size(), "SET_BACKEND_REQ_FD carries no payload");
            assertEquals(1, m.fdCount(), "SET_BACKEND_REQ_FD carries the back-end's end of the channel");
            backendSide = new VhostUserChannel(m.takeFd(0), "back-end requests");
        }
    }

    @AfterEach
    void close() {
        backendSide.close();
        requests.close();
        frontendMain.close();
        backendMain.close();
    }

    private BackendRequests.Outcome send(int request, int flags, byte[] payload) throws Exception {
        backendSide.send(new VhostUserMessage(request, flags, payload));
        return requests.serveOne(() -> {
            changes.incrementAndGet();
            return true;
        });
    }

    private long reply(int request) throws Exception {
        try (VhostUserMessage r = backendSide.receive(1_000)) {
            assertEquals(request, r.request());
            assertEquals(VhostUser.VERSION | VhostUser.FLAG_REPLY, r.flags(), "a reply's flags are exactly 0x5");
            return Payloads.u64(r);
        }
    }

    @Test
    void aConfigChangeReachesTheDeviceAndIsAcknowledgedWhenAsked() throws Exception {
        assertEquals(BackendRequests.Outcome.SERVED, send(VhostUser.BACKEND_CONFIG_CHANGE_MSG, VhostUser.VERSION, new byte[0]));
        assertEquals(1, changes.get());
        assertEquals(BackendRequests.Outcome.SERVED, send(VhostUser.BACKEND_CONFIG_CHANGE_MSG,
                VhostUser.VERSION | VhostUser.FLAG_NEED_REPLY, new byte[0]));
        assertEquals(2, changes.get());
        assertEquals(0, reply(VhostUser.BACKEND_CONFIG_CHANGE_MSG));
        assertEquals(2, requests.configChanges());
    }

    @Test
    void whatFerryDoesNotServeIsRefusedAndTheChannelGoesOn() throws Exception {
        for (int r : new int[] {VhostUser.BACKEND_IOTLB_MSG, VhostUser.BACKEND_VRING_HOST_NOTIFIER_MSG, 77}) {
            assertEquals(BackendRequests.Outcome.REFUSED, send(r, VhostUser.VERSION | VhostUser.FLAG_NEED_REPLY, new byte[16]));
            assertEquals(1, reply(r), "a refused request is answered non-zero");
        }
        assertEquals(BackendRequests.Outcome.REFUSED, send(VhostUser.BACKEND_CONFIG_CHANGE_MSG,
                VhostUser.VERSION | VhostUser.FLAG_NEED_REPLY, new byte[8]));
        assertEquals(1, reply(VhostUser.BACKEND_CONFIG_CHANGE_MSG));
        assertTrue(requests.lastProblem().contains("carries neither"), requests.lastProblem());
        assertEquals(0, changes.get(), "nothing refused reached the device");
        assertEquals(4, requests.refused());
        // Still usable.
        assertEquals(BackendRequests.Outcome.SERVED, send(VhostUser.BACKEND_CONFIG_CHANGE_MSG, VhostUser.VERSION, new byte[0]));
        assertEquals(1, changes.get());
    }

    @Test
    void aDeviceThatRefusesIsAnsweredNonZero() throws Exception {
        backendSide.send(new VhostUserMessage(VhostUser.BACKEND_CONFIG_CHANGE_MSG, VhostUser.VERSION | VhostUser.FLAG_NEED_REPLY,
                new byte[0]));
        assertEquals(BackendRequests.Outcome.REFUSED, requests.serveOne(() -> false));
        assertEquals(1, reply(VhostUser.BACKEND_CONFIG_CHANGE_MSG));
    }

    @Test
    void aReplyFlagBreaksTheChannel() throws Exception {
        assertEquals(BackendRequests.Outcome.BROKEN, send(VhostUser.BACKEND_CONFIG_CHANGE_MSG,
                VhostUser.VERSION | VhostUser.FLAG_REPLY, new byte[0]));
        assertTrue(requests.lastProblem().contains("REPLY flag"), requests.lastProblem());
        assertEquals(0, changes.get());
    }

    @Test
    void aBrokenHeaderBreaksTheChannel() throws Exception {
        assertEquals(BackendRequests.Outcome.BROKEN, send(VhostUser.BACKEND_CONFIG_CHANGE_MSG, 0x3, new byte[0]));
        assertTrue(requests.lastProblem().contains("version"), requests.lastProblem());
        assertEquals(0, changes.get());
    }

    @Test
    void aBackEndThatClosesItsEndClosesTheChannel() throws Exception {
        backendSide.close();
        assertEquals(BackendRequests.Outcome.CLOSED, requests.serveOne(() -> {
            changes.incrementAndGet();
            return true;
        }));
        assertFalse(changes.get() > 0);
    }
}
