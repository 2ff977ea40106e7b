package dev.ferry.virtio.net;

import dev.ferry.core.device.Device;
import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceContext;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.virtio.VirtioMmioDevice;

import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.Set;

/**
 * Config kind {@code virtio-net}:
 * <pre>
 * { "id": "nic0", "kind": "virtio-net", "mac": "52:54:00:12:34:56",
 *   "netdev": "dgram:127.0.0.1:5555", "local": "127.0.0.1:0", "queue-size": 256, "guest-announce": true }
 * </pre>
 * {@code netdev}: {@code tap:NAME} (a TAP interface with the virtio-net header), {@code
 * dgram:HOST:PORT} (UDP to a peer, from {@code local}, by default any port of 127.0.0.1 — a
 * source and its destination on one host each use their own), {@code stream:HOST:PORT} (TCP) or
 * {@code unix:PATH}, QEMU's be32-length framing. The back-end is opened when the device is
 * created, on a migration destination too; an unreachable one is a config error naming it.
 */
public final class VirtioNetKind implements DeviceKind {
    public static final String NAME = "virtio-net";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Set<String> options() {
        return Set.of("mac", "netdev", "local", "queue-size", "guest-announce");
    }

    /** The device options as {@link NetOptions}; every range is checked. */
    public static NetOptions parse(DeviceOptions o) throws DeviceConfigException {
        int queueSize = o.integer("queue-size", 256, 2, 1024);
        if (Integer.bitCount(queueSize) != 1) {
            throw o.error("queue-size", "must be a power of two from 2 to 1024, got " + queueSize);
        }
        byte[] mac;
        try {
            mac = NetOptions.parseMac(o.string("mac", "52:54:00:12:34:56"));
            return new NetOptions(mac, queueSize, o.bool("guest-announce", true));
        } catch (IllegalArgumentException e) {
            throw o.error("mac", e.getMessage());
        }
    }

    /** What {@code netdev} (and {@code local}) name, checked but not opened. */
    public sealed interface Netdev permits Netdev.Tap, Netdev.Dgram, Netdev.Stream, Netdev.Unix {
        record Tap(String name) implements Netdev {
        }

        record Dgram(InetSocketAddress remote, InetSocketAddress local) implements Netdev {
        }

        record Stream(InetSocketAddress remote) implements Netdev {
        }

        record Unix(Path path) implements Netdev {
        }
    }

    public static Netdev parseNetdev(DeviceOptions o) throws DeviceConfigException {
        String nd = o.string("netdev", null);
        int colon = nd.indexOf(':');
        String type = colon < 0 ? nd : nd.substring(0, colon);
        String rest = colon < 0 ? "" : nd.substring(colon + 1);
        try {
            return switch (type) {
                case "tap" -> {
                    if (rest.isEmpty() || rest.length() > 15) {
                        throw o.error("netdev", "tap:NAME needs an interface name of 1 to 15 characters");
                    }
                    yield new Netdev.Tap(rest);
                }
                case "dgram" -> new Netdev.Dgram(hostPort(rest), hostPort(o.string("local", "127.0.0.1:0")));
                case "stream" -> new Netdev.Stream(hostPort(rest));
                case "unix" -> {
                    if (rest.isEmpty()) {
                        throw o.error("netdev", "unix:PATH needs a socket path");
                    }
                    yield new Netdev.Unix(Path.of(rest));
                }
                default -> throw o.error("netdev", "'" + nd + "' is not tap:NAME, dgram:HOST:PORT, stream:HOST:PORT "
                        + "or unix:PATH");
            };
        } catch (IllegalArgumentException e) {
            throw o.error("netdev", e.getMessage());
        }
    }

    private static InetSocketAddress hostPort(String s) {
        int c = s.lastIndexOf(':');
        if (c <= 0) {
            throw new IllegalArgumentException("'" + s + "' is not HOST:PORT");
        }
        int port;
        try {
            port = Integer.parseInt(s.substring(c + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + s + "' is not HOST:PORT");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port " + port + " in '" + s + "' is not 0..65535");
        }
        return new InetSocketAddress(s.substring(0, c), port);
    }

    /** Opens the back-end {@code netdev} names. */
    public static NetBackend open(Netdev n) {
        if (n instanceof Netdev.Tap t) {
            return new TapBackend(t.name());
        } else if (n instanceof Netdev.Dgram d) {
            return new DgramBackend(d.local(), d.remote());
        } else if (n instanceof Netdev.Stream s) {
            return StreamBackend.tcp(s.remote());
        }
        return StreamBackend.unix(((Netdev.Unix) n).path());
    }

    @Override
    public void validate(DeviceOptions options) throws DeviceConfigException {
        parse(options);
        parseNetdev(options);
    }

    @Override
    public Device create(DeviceContext context, DeviceOptions options) throws DeviceConfigException {
        NetOptions n = parse(options);
        Netdev nd = parseNetdev(options);
        NetBackend backend;
        try {
            backend = open(nd);
        } catch (RuntimeException e) {
            throw options.error("netdev", "cannot open " + options.string("netdev", null) + ": " + e.getMessage());
        }
        return VirtioMmioDevice.attach(context, NAME, new VirtioNet(context.id(), n, backend));
    }
}
