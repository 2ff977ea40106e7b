package dev.ferry.vhostuser.check;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Sys;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The malformed-request part of the check: each bad request goes out on a connection of its own
 * (negotiated up to SET_OWNER, with REPLY_ACK when offered, and NEED_REPLY set on the bad request),
 * so a back-end that hangs up on it loses nothing the check needs. A refusal is a non-zero ack or
 * a hang-up; an ack of 0 is a violation, and so is silence when REPLY_ACK was negotiated. After the
 * probes a new well-formed connection must still be served. How the back-end handled each request
 * goes into the report's notes.
 */
final class MalformedProbe {
    private final VhostUserCheck.Options options;
    private final CheckLedger ledger;
    private final int rings;

    MalformedProbe(VhostUserCheck.Options options, CheckLedger ledger, int rings) {
        this.options = options;
        this.ledger = ledger;
        this.rings = rings;
    }

    void run() {
        probe("SET_VRING_NUM with a 4-byte payload (8 expected)", VhostUser.SET_VRING_NUM,
                ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0).array(), false);
        ByteBuffer table = ByteBuffer.allocate(8 + 9 * Payloads.MemRegion.SIZE).order(ByteOrder.LITTLE_ENDIAN);
        table.putInt(9).putInt(0);
        for (int i = 0; i < 9; i++) {
            table.putLong(i * 0x10_0000L).putLong(0x10_0000L).putLong(0x7f00_0000_0000L + i * 0x10_0000L).putLong(0);
        }
        probe("SET_MEM_TABLE announcing 9 regions (at most 8) with one descriptor", VhostUser.SET_MEM_TABLE,
                table.array(), true);
        probe("SET_VRING_NUM for ring 4096 (the device has " + rings + ")", VhostUser.SET_VRING_NUM,
                Payloads.vringState(4096, CheckGuest.QUEUE_SIZE), false);
        try (CheckFrontend fe = CheckFrontend.connect(options.socket(), options.replyTimeoutMs())) {
            fe.getFeatures();
            ledger.pass(CheckRule.MALFORMED);
        } catch (VhostUserException e) {
            ledger.violation(CheckRule.MALFORMED, "after the malformed requests a new connection is not served: "
                    + e.getMessage());
        }
    }

    private void probe(String what, int request, byte[] payload, boolean withFd) {
        long wait = Math.min(options.replyTimeoutMs(), 1_000);
        CheckFrontend fe;
        try {
            fe = CheckFrontend.connect(options.socket(), options.replyTimeoutMs());
        } catch (VhostUserException e) {
            ledger.violation(CheckRule.MALFORMED, what + ": no connection for the probe: " + e.getMessage());
            return;
        }
        try (fe) {
            try {
                fe.getFeatures();
                fe.getProtocolFeatures();
                fe.setProtocolFeatures(VhostUser.bit(VhostUser.PF_REPLY_ACK));
                fe.request(VhostUser.SET_OWNER, new byte[0]);
            } catch (VhostUserException e) {
                ledger.violation(CheckRule.MALFORMED, what + ": a well-formed handshake before it failed: "
                        + e.getMessage());
                return;
            }
            boolean acks = fe.hasProtocol(VhostUser.PF_REPLY_ACK);
            try (Fd fd = withFd ? Sys.memfdCreate("ferry-check-probe", Linux.MFD_CLOEXEC) : null) {
                VhostUserMessage m = withFd ? VhostUserMessage.request(request, true, payload, fd)
                        : VhostUserMessage.request(request, true, payload);
                fe.connection().channel().send(m);
            }
            VhostUserMessage r;
            try {
                r = fe.connection().channel().receive(wait);
            } catch (VhostUserException.Disconnected e) {
                ledger.pass(CheckRule.MALFORMED);
                ledger.note(CheckRule.MALFORMED, what + ": the back-end closed the connection");
                return;
            } catch (VhostUserException.Timeout e) {
                if (acks) {
                    ledger.violation(CheckRule.MALFORMED, what + ": no nack within " + wait + " ms although REPLY_ACK"
                            + " was negotiated and NEED_REPLY set, and the connection stayed open");
                } else {
                    ledger.pass(CheckRule.MALFORMED);
                    ledger.note(CheckRule.MALFORMED, what + ": no answer (REPLY_ACK not negotiated)");
                }
                return;
            }
            try (r) {
                long status = r.size() == 8 ? Payloads.u64(r) : -1;
                if (r.request() != request) {
                    ledger.violation(CheckRule.MALFORMED, what + ": the back-end answered with " + r
                            + " instead of a nack naming the request");
                } else if (status != 0) {
                    ledger.pass(CheckRule.MALFORMED);
                    ledger.note(CheckRule.MALFORMED, what + ": refused with status " + status);
                } else {
                    ledger.violation(CheckRule.MALFORMED, what + ": the back-end answered " + r + " with status "
                            + status + " (accepted)");
                }
            }
        } catch (VhostUserException e) {
            ledger.pass(CheckRule.MALFORMED);
            ledger.note(CheckRule.MALFORMED, what + ": the connection broke (" + e.getMessage() + ")");
        }
    }
}
