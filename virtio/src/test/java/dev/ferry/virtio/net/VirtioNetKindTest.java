package dev.ferry.virtio.net;

import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DeviceOptions;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.ServiceLoader;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Config kind {@code virtio-net}: found through the ServiceLoader; every option checked with the field named. */
class VirtioNetKindTest {
    static DeviceOptions opts(Object... kv) {
        Map<String, Object> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return new DeviceOptions("devices[1]", m);
    }

    @Test
    void registeredWithTheServiceLoader() {
        assertTrue(ServiceLoader.load(DeviceKind.class).stream().anyMatch(p -> p.type() == VirtioNetKind.class));
    }

    @Test
    void netdevForms() throws Exception {
        assertEquals(new VirtioNetKind.Netdev.Tap("tap7"), VirtioNetKind.parseNetdev(opts("netdev", "tap:tap7")));
        assertEquals(new VirtioNetKind.Netdev.Dgram(new InetSocketAddress("127.0.0.1", 5555),
                new InetSocketAddress("127.0.0.1", 0)), VirtioNetKind.parseNetdev(opts("netdev", "dgram:127.0.0.1:5555")));
        assertEquals(new VirtioNetKind.Netdev.Dgram(new InetSocketAddress("127.0.0.1", 5555),
                        new InetSocketAddress("127.0.0.1", 6000)),
                VirtioNetKind.parseNetdev(opts("netdev", "dgram:127.0.0.1:5555", "local", "127.0.0.1:6000")));
        assertEquals(new VirtioNetKind.Netdev.Stream(new InetSocketAddress("127.0.0.1", 7000)),
                VirtioNetKind.parseNetdev(opts("netdev", "stream:127.0.0.1:7000")));
        assertEquals(new VirtioNetKind.Netdev.Unix(Path.of("/run/peer.sock")),
                VirtioNetKind.parseNetdev(opts("netdev", "unix:/run/peer.sock")));
    }

    @Test
    void optionsAndDefaults() throws Exception {
        NetOptions o = VirtioNetKind.parse(opts("netdev", "tap:t0"));
        assertArrayEquals(new byte[] {0x52, 0x54, 0, 0x12, 0x34, 0x56}, o.mac());
        assertEquals(256, o.queueSize());
        assertTrue(o.guestAnnounce());
        o = VirtioNetKind.parse(opts("netdev", "tap:t0", "mac", "02:00:00:aa:bb:cc", "queue-size", 64,
                "guest-announce", false));
        assertEquals("02:00:00:aa:bb:cc", NetOptions.format(o.mac()));
        assertEquals(64, o.queueSize());
        assertEquals(false, o.guestAnnounce());
    }

    @Test
    void badOptionsNameTheField() {
        assertError("devices[1].netdev", opts("netdev", "vde:x"));
        assertError("devices[1].netdev", opts("netdev", "tap:"));
        assertError("devices[1].netdev", opts("netdev", "tap:a-name-much-too-long"));
        assertError("devices[1].netdev", opts("netdev", "dgram:nohost"));
        assertError("devices[1].netdev", opts("netdev", "dgram:127.0.0.1:70000"));
        assertError("devices[1].netdev", opts("netdev", "stream:127.0.0.1:x"));
        assertError("devices[1].mac", opts("netdev", "tap:t0", "mac", "01:00:5e:00:00:01"));
        assertError("devices[1].mac", opts("netdev", "tap:t0", "mac", "52:54:00:12:34"));
        assertError("devices[1].mac", opts("netdev", "tap:t0", "mac", "52:54:00:12:34:zz"));
        assertError("devices[1].queue-size", opts("netdev", "tap:t0", "queue-size", 100));
        assertError("devices[1].queue-size", opts("netdev", "tap:t0", "queue-size", 2048));
    }

    private static void assertError(String field, DeviceOptions o) {
        DeviceConfigException e = assertThrows(DeviceConfigException.class, () -> new VirtioNetKind().validate(o));
        assertTrue(e.getMessage().startsWith(field), field + " in: " + e.getMessage());
    }
}
