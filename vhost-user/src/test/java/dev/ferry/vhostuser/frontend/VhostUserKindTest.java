package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DeviceOptions;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The config kinds as the VMM finds them (ServiceLoader) and their option checks. */
class VhostUserKindTest {
    private static DeviceKind kind(String name) {
        for (DeviceKind k : ServiceLoader.load(DeviceKind.class)) {
            if (k.name().equals(name)) {
                return k;
            }
        }
        throw new AssertionError("no device kind " + name + " on the class path");
    }

    private static DeviceOptions opts(Object... kv) {
        Map<String, Object> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return new DeviceOptions("devices[0]", m);
    }

    @Test
    void bothKindsAreFoundWithTheirOptions() {
        assertEquals(Set.of("socket", "queues", "reply-timeout-ms", "image"), kind("vhost-user-blk").options());
        assertEquals(Set.of("socket", "queues", "reply-timeout-ms", "mac"), kind("vhost-user-net").options());
    }

    @Test
    void optionsAreCheckedNamingTheField() throws Exception {
        DeviceKind blk = kind("vhost-user-blk");
        DeviceKind net = kind("vhost-user-net");
        blk.validate(opts("socket", "/run/vub.sock", "queues", 2, "reply-timeout-ms", 1000));
        net.validate(opts("socket", "/run/net.sock", "mac", "52:54:00:aa:bb:cc"));
        Set<String> refusals = new TreeSet<>();
        for (DeviceOptions o : new DeviceOptions[] {opts(), opts("socket", ""), opts("socket", "s", "queues", 0),
                opts("socket", "s", "queues", 17), opts("socket", "s", "reply-timeout-ms", 5)}) {
            DeviceConfigException e = assertThrows(DeviceConfigException.class, () -> blk.validate(o), o.toString());
            assertTrue(e.getMessage().startsWith("devices[0]."), e.getMessage());
            refusals.add(e.getMessage().substring(0, e.getMessage().indexOf(':')));
        }
        assertEquals(Set.of("devices[0].socket", "devices[0].queues", "devices[0].reply-timeout-ms"), refusals);
        for (String mac : new String[] {"01:00:5e:00:00:01", "52:54:00:12:34", "zz:54:00:12:34:56"}) {
            DeviceConfigException e = assertThrows(DeviceConfigException.class,
                    () -> net.validate(opts("socket", "s", "mac", mac)), mac);
            assertTrue(e.getMessage().startsWith("devices[0].mac"), e.getMessage());
        }
        // net counts queue pairs: 1..8
        net.validate(opts("socket", "s", "queues", 8));
        DeviceConfigException e = assertThrows(DeviceConfigException.class,
                () -> net.validate(opts("socket", "s", "queues", 9)));
        assertTrue(e.getMessage().startsWith("devices[0].queues"), e.getMessage());
        assertArrayEquals(new byte[] {0x52, 0x54, 0, (byte) 0xaa, (byte) 0xbb, (byte) 0xcc},
                VhostUserOptions.parseMac("52:54:00:aa:bb:cc"));
    }
}
