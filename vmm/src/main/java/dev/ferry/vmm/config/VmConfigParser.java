package dev.ferry.vmm.config;

import dev.ferry.vfio.emulated.EmulatedVfSpec;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * Reads a {@link VmConfig} from JSON and checks every field, naming the field path in each error:
 * {@code vm.json: memory.size: '1X' is not a size (use e.g. 512M, 1G, 4096)}. Unknown fields are
 * errors too — a misspelt option must not be silently ignored.
 */
public final class VmConfigParser {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The VFIO kinds, built together on one emulated PF by the VMM; every other kind comes from the registry. */
    private static final Set<String> VFIO_KINDS = Set.of("vf", "vfio");

    private final String source;

    private VmConfigParser(String source) {
        this.source = source;
    }

    public static VmConfig parse(Path file) throws ConfigException {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new ConfigException(file + ": cannot read: " + e.getMessage());
        }
        return parse(text, file.getFileName().toString());
    }

    public static VmConfig parse(String json, String sourceName) throws ConfigException {
        return new VmConfigParser(sourceName).parse(json);
    }

    private VmConfig parse(String json) throws ConfigException {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw error("", "not valid JSON: " + e.getOriginalMessage() + " (line " + e.getLocation().getLineNr() + ")");
        }
        if (root == null || !root.isObject()) {
            throw error("", "the config must be a JSON object");
        }
        ObjectNode top = (ObjectNode) root;
        allowOnly(top, "", "name", "memory", "vcpus", "engine", "workload", "devices");
        String name = text(top, "name", "vm");
        if (!name.matches("[A-Za-z0-9_.-]{1,64}")) {
            throw error("name", "'" + name + "' must be 1-64 letters, digits, '.', '_' or '-'");
        }

        ObjectNode memory = object(top, "memory");
        if (memory == null) {
            throw error("memory", "missing (e.g. \"memory\": {\"size\": \"1G\"})");
        }
        allowOnly(memory, "memory.", "size", "prealloc", "hugetlb");
        long size = size(memory, "memory.", "size", null);
        if (size < (1 << 20) || size % 4096 != 0) {
            throw error("memory.size", size + " bytes: must be at least 1M and a multiple of 4K");
        }
        JsonNode pre = memory.get("prealloc");
        boolean preallocBackground = pre != null && pre.isTextual() && pre.asText().equals("background");
        if (pre != null && pre.isTextual() && !preallocBackground) {
            throw error("memory.prealloc", "must be true, false or \"background\", not \"" + pre.asText() + "\"");
        }
        boolean prealloc = !preallocBackground && bool(memory, "memory.", "prealloc", false);
        boolean hugetlb = bool(memory, "memory.", "hugetlb", false);
        if (hugetlb && size % (2 << 20) != 0) {
            throw error("memory.size", size + " bytes: with \"hugetlb\": true it must be a multiple of 2M");
        }

        int vcpus = integer(top, "", "vcpus", 1, 1, 64);
        VmConfig.Engine engine;
        String e = text(top, "engine", "auto");
        try {
            engine = VmConfig.Engine.valueOf(e.toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException ex) {
            throw error("engine", "'" + e + "' is not an engine (auto, kvm or soft)");
        }

        ObjectNode w = object(top, "workload");
        VmConfig.Workload workload;
        if (w == null) {
            workload = new VmConfig.Workload(50L << 20, Math.min(size, 256L << 20), 1, 1.0);
        } else {
            allowOnly(w, "workload.", "dirty-rate", "working-set", "seed", "populate");
            long rate = size(w, "workload.", "dirty-rate", 50L << 20);
            if (rate <= 0) {
                throw error("workload.dirty-rate", "must be positive");
            }
            long ws = size(w, "workload.", "working-set", Math.min(size, 256L << 20));
            if (ws <= 0 || ws > size || ws % 4096 != 0) {
                throw error("workload.working-set", ws + " bytes: must be a multiple of 4K within memory.size ("
                        + size + ")");
            }
            long seed = w.has("seed") ? longValue(w, "workload.", "seed") : 1;
            double populate = w.has("populate") ? number(w, "workload.", "populate") : 1.0;
            if (!(populate >= 0 && populate <= 1)) {
                throw error("workload.populate", populate + " must be between 0 and 1");
            }
            workload = new VmConfig.Workload(rate, ws, seed, populate);
        }

        List<VmConfig.DeviceConfig> devices = new ArrayList<>();
        JsonNode d = top.get("devices");
        if (d != null && !d.isNull()) {
            if (!d.isArray()) {
                throw error("devices", "must be a list");
            }
            for (int i = 0; i < d.size(); i++) {
                String path = "devices[" + i + "]";
                if (!d.get(i).isObject()) {
                    throw error(path, "must be an object with \"id\" and \"kind\"");
                }
                ObjectNode dev = (ObjectNode) d.get(i);
                String kind = dev.path("kind").asText("");
                java.util.Optional<dev.ferry.core.device.DeviceKind> registered = DeviceKinds.find(kind);
                if (!VFIO_KINDS.contains(kind) && registered.isEmpty()) {
                    java.util.Set<String> known = new java.util.TreeSet<>(VFIO_KINDS);
                    known.addAll(DeviceKinds.names());
                    throw error(path + ".kind", "'" + kind + "' is not a device kind this build supports " + known);
                }
                String id = dev.path("id").asText("");
                if (!id.matches("[a-zA-Z][a-zA-Z0-9_.-]{0,31}")) {
                    throw error(path + ".id", "'" + id + "' must be 1-32 letters, digits, '_', '.', '-', starting"
                            + " with a letter");
                }
                for (VmConfig.DeviceConfig other : devices) {
                    if (other.id().equals(id)) {
                        throw error(path + ".id", "'" + id + "' is already used by another device");
                    }
                }
                if (registered.isPresent()) {
                    List<String> allowed = new ArrayList<>(List.of("id", "kind"));
                    allowed.addAll(new java.util.TreeSet<>(registered.get().options()));
                    allowOnly(dev, path + ".", allowed.toArray(new String[0]));
                    try {
                        registered.get().validate(DeviceKinds.options(path, dev));
                    } catch (dev.ferry.core.device.DeviceConfigException bad) {
                        throw new ConfigException(source + ": " + bad.getMessage());
                    }
                    devices.add(new VmConfig.DeviceConfig(id, kind, dev));
                    continue;
                }
                switch (kind) {
                    case "vf" -> {
                        // an emulated SR-IOV NIC VF: "flags" as `--vf` and `ferry vfio check` take them
                        allowOnly(dev, path + ".", "id", "kind", "flags");
                        JsonNode flags = dev.get("flags");
                        if (flags != null && !flags.isTextual()) {
                            throw error(path + ".flags", "must be a string such as \"stop-copy,p2p,pre-copy\"");
                        }
                        try {
                            EmulatedVfSpec.parse(flags == null ? "" : flags.asText());
                        } catch (IllegalArgumentException bad) {
                            throw error(path + ".flags", bad.getMessage());
                        }
                    }
                    case "vfio" -> {
                        // a kernel VFIO device: a cdev path or a PCI address
                        allowOnly(dev, path + ".", "id", "kind", "host");
                        if (!dev.path("host").isTextual() || dev.path("host").asText().isEmpty()) {
                            throw error(path + ".host", "must name the device: /dev/vfio/devices/vfioN or a PCI address");
                        }
                    }
                    default -> throw new IllegalStateException(kind);
                }
                devices.add(new VmConfig.DeviceConfig(id, kind, dev));
            }
        }
        return new VmConfig(name, size, prealloc, preallocBackground, hugetlb, vcpus, engine, workload, List.copyOf(devices));
    }

    private ConfigException error(String field, String problem) {
        return new ConfigException(source + ": " + (field.isEmpty() ? "" : field + ": ") + problem);
    }

    private void allowOnly(ObjectNode node, String prefix, String... names) throws ConfigException {
        Set<String> allowed = Set.of(names);
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!allowed.contains(f)) {
                throw error(prefix + f, "unknown field (known: " + String.join(", ", names) + ")");
            }
        }
    }

    private ObjectNode object(ObjectNode node, String field) throws ConfigException {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isObject()) {
            throw error(field, "must be an object");
        }
        return (ObjectNode) v;
    }

    private String text(ObjectNode node, String field, String dflt) throws ConfigException {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isTextual()) {
            throw error(field, "must be a string");
        }
        return v.asText();
    }

    private long size(ObjectNode node, String prefix, String field, Long dflt) throws ConfigException {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            if (dflt == null) {
                throw error(prefix + field, "missing");
            }
            return dflt;
        }
        if (v.isIntegralNumber()) {
            if (v.asLong() < 0) {
                throw error(prefix + field, "must not be negative");
            }
            return v.asLong();
        }
        if (!v.isTextual()) {
            throw error(prefix + field, "must be a size such as \"512M\" or a number of bytes");
        }
        try {
            return Sizes.parse(v.asText());
        } catch (IllegalArgumentException e) {
            throw error(prefix + field, "'" + v.asText() + "' is not a size (use e.g. 512M, 1G, 4096)");
        }
    }

    private boolean bool(ObjectNode node, String prefix, String field, boolean dflt) throws ConfigException {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isBoolean()) {
            throw error(prefix + field, "must be true or false");
        }
        return v.asBoolean();
    }

    private int integer(ObjectNode node, String prefix, String field, int dflt, int min, int max)
            throws ConfigException {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isIntegralNumber() || v.asLong() < min || v.asLong() > max) {
            throw error(prefix + field, "must be an integer from " + min + " to " + max);
        }
        return v.asInt();
    }

    private long longValue(ObjectNode node, String prefix, String field) throws ConfigException {
        JsonNode v = node.get(field);
        if (!v.isIntegralNumber()) {
            throw error(prefix + field, "must be an integer");
        }
        return v.asLong();
    }

    private double number(ObjectNode node, String prefix, String field) throws ConfigException {
        JsonNode v = node.get(field);
        if (!v.isNumber()) {
            throw error(prefix + field, "must be a number");
        }
        return v.asDouble();
    }
}
