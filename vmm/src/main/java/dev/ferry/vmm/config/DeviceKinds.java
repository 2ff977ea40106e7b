package dev.ferry.vmm.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DeviceOptions;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.TreeMap;

/**
 * The device kinds on the class path ({@link ServiceLoader} of {@link DeviceKind}), by name, and
 * the bridge from a config entry's JSON to {@link DeviceOptions}. A new kind needs only its class
 * and a service line in its own module.
 */
public final class DeviceKinds {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, DeviceKind> KINDS = load();

    private DeviceKinds() {
    }

    private static Map<String, DeviceKind> load() {
        Map<String, DeviceKind> m = new TreeMap<>();
        for (DeviceKind k : ServiceLoader.load(DeviceKind.class, DeviceKinds.class.getClassLoader())) {
            if (m.put(k.name(), k) != null) {
                throw new IllegalStateException("two device kinds named " + k.name() + " on the class path");
            }
        }
        return Map.copyOf(m);
    }

    public static Optional<DeviceKind> find(String name) {
        return Optional.ofNullable(KINDS.get(name));
    }

    public static Set<String> names() {
        return KINDS.keySet();
    }

    /** The entry's options (without {@code id} and {@code kind}) as plain values. */
    public static DeviceOptions options(String path, ObjectNode entry) {
        Map<String, Object> values = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = entry.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            if (!f.getKey().equals("id") && !f.getKey().equals("kind") && !f.getValue().isNull()) {
                values.put(f.getKey(), JSON.convertValue(f.getValue(), Object.class));
            }
        }
        return new DeviceOptions(path, values);
    }
}
