package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.vhostuser.proto.BackendConnection;

import java.nio.file.Path;

/**
 * The options of the {@code vhost-user-blk} and {@code vhost-user-net} kinds.
 *
 * @param socket         the back-end's UNIX socket (it listens; the front-end connects)
 * @param queues         queues (blk) or queue pairs (net) to use
 * @param replyTimeoutMs how long a reply may take before the back-end counts as hung
 * @param mac            net only: the guest's MAC (null for blk)
 */
public record VhostUserOptions(Path socket, int queues, long replyTimeoutMs, byte[] mac) {
    static VhostUserOptions parse(DeviceOptions o, boolean net) throws DeviceConfigException {
        String socket = o.string("socket", null);
        if (socket.isEmpty()) {
            throw o.error("socket", "must name the back-end's UNIX socket");
        }
        int queues = o.integer("queues", 1, 1, net ? VhostUserNet.MAX_PAIRS : 16);
        int timeout = o.integer("reply-timeout-ms", (int) BackendConnection.DEFAULT_REPLY_TIMEOUT_MS, 10, 600_000);
        byte[] mac = null;
        if (net) {
            String m = o.string("mac", "52:54:00:12:34:56");
            mac = parseMac(m);
            if (mac == null) {
                throw o.error("mac", "'" + m + "' is not a unicast MAC like 52:54:00:12:34:56");
            }
        }
        return new VhostUserOptions(Path.of(socket), queues, timeout, mac);
    }

    /** Six colon-separated hex bytes, unicast; null otherwise. */
    static byte[] parseMac(String s) {
        String[] p = s.split(":");
        if (p.length != 6) {
            return null;
        }
        byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) {
            if (!p[i].matches("[0-9a-fA-F]{2}")) {
                return null;
            }
            mac[i] = (byte) Integer.parseInt(p[i], 16);
        }
        return (mac[0] & 1) == 0 ? mac : null;
    }
}
