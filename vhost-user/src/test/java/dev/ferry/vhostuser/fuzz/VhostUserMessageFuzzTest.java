package dev.ferry.vhostuser.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sockets;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserChannel;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fuzz target: the vhost-user message layer against a hostile peer that controls every byte on the
 * socket. The bytes go through a real socket pair into a {@link VhostUserChannel}; every message it
 * accepts is decoded as the payload of its request would be. Whatever the bytes, the channel
 * returns well-formed messages (version 1, at most 4096 payload bytes) or refuses with a
 * {@link VhostUserException} and stays broken; every decoder returns values inside the
 * specification's bounds or refuses the same way — never another exception, never a hang.
 */
class VhostUserMessageFuzzTest {
    @FuzzTest(maxDuration = "30s")
    void theParserAcceptsOnlyWhatTheSpecificationAllows(FuzzedDataProvider data) throws Exception {
        byte[] bytes = data.consumeRemainingAsBytes();
        Fd[] pair = Sockets.unixPair("fuzz");
        try (VhostUserChannel ch = new VhostUserChannel(pair[0], "fuzzed peer")) {
            long buf = NativeMemory.allocate(Math.max(1, bytes.length));
            try {
                NativeMemory.copyFromArray(bytes, 0, buf, bytes.length);
                if (bytes.length > 0) {
                    Sockets.sendWithFds(pair[1], buf, bytes.length, new int[0]);
                }
            } finally {
                NativeMemory.free(buf);
            }
            Sockets.shutdown(pair[1]);
            for (int n = 0; n < 1000; n++) {
                VhostUserMessage m;
                try {
                    m = ch.receive(1000);
                } catch (VhostUserException e) {
                    assertNotNull(e.getMessage());
                    assertNotNull(ch.brokenReason(), "a refused stream leaves the channel broken");
                    return;
                }
                try (m) {
                    assertEquals(VhostUser.VERSION, m.flags() & VhostUser.VERSION_MASK);
                    assertTrue(m.size() <= VhostUser.MAX_PAYLOAD);
                    decode(m);
                }
            }
        } finally {
            pair[1].close();
        }
    }

    /** Every decoder that could apply to this request: bounded values, or a refusal. */
    private static void decode(VhostUserMessage m) {
        try {
            switch (m.request()) {
                case VhostUser.SET_MEM_TABLE -> {
                    List<Payloads.MemRegion> regions = Payloads.memTable(m);
                    assertTrue(!regions.isEmpty() && regions.size() <= VhostUser.MAX_MEM_REGIONS);
                    for (Payloads.MemRegion r : regions) {
                        assertTrue(r.size() > 0 && r.size() % VhostUser.LOG_PAGE == 0 && r.mmapOffset() % 4096 == 0);
                    }
                }
                case VhostUser.ADD_MEM_REG, VhostUser.REM_MEM_REG -> assertTrue(Payloads.singleRegion(m).size() > 0);
                case VhostUser.SET_LOG_BASE -> {
                    Payloads.LogBase l = Payloads.logBase(m, 1L << 30);
                    assertTrue(l.size() > 0 && l.size() <= 1L << 30);
                }
                case VhostUser.GET_CONFIG, VhostUser.SET_CONFIG -> {
                    Payloads.Config c = Payloads.config(m);
                    assertTrue(c.offset() + c.size() <= Payloads.Config.MAX && c.data().length == c.size());
                }
                case VhostUser.SET_VRING_ADDR -> Payloads.vringAddr(m);
                case VhostUser.SET_VRING_NUM, VhostUser.SET_VRING_BASE, VhostUser.GET_VRING_BASE,
                        VhostUser.SET_VRING_ENABLE -> Payloads.vringState(m);
                case VhostUser.SET_VRING_KICK, VhostUser.SET_VRING_CALL, VhostUser.SET_VRING_ERR -> {
                    int q = Payloads.vringFdIndex(m, 8);
                    assertTrue(q >= 0 && q < 8);
                }
                case VhostUser.GET_INFLIGHT_FD, VhostUser.SET_INFLIGHT_FD -> Payloads.inflight(m);
                case VhostUser.SET_DEVICE_STATE_FD -> Payloads.deviceStateTransfer(m);
                case VhostUser.SEND_RARP -> assertEquals(6, Payloads.rarpMac(m).length);
                default -> Payloads.u64(m);
            }
        } catch (VhostUserException e) {
            assertNotNull(e.getMessage());
            assertTrue(e.getMessage().startsWith(m.name()), "the refusal names the request: " + e.getMessage());
        }
    }
}
