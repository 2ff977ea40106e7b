package dev.ferry.core.device;

import java.util.Map;

/**
 * One device entry's options as plain values (strings, numbers, booleans), with typed getters
 * whose errors name the field by its path in the config ({@code devices[1].queue-size}).
 */
public final class DeviceOptions {
    private final String path;
    private final Map<String, Object> values;

    /** @param path the entry's place in the config, e.g. {@code devices[1]} */
    public DeviceOptions(String path, Map<String, Object> values) {
        this.path = path;
        this.values = Map.copyOf(values);
    }

    public String path() {
        return path;
    }

    public boolean has(String name) {
        return values.containsKey(name);
    }

    private DeviceConfigException bad(String name, String problem) {
        return new DeviceConfigException(path + "." + name + ": " + problem);
    }

    public String string(String name, String dflt) throws DeviceConfigException {
        Object v = values.get(name);
        if (v == null) {
            if (dflt == null) {
                throw bad(name, "missing");
            }
            return dflt;
        }
        if (!(v instanceof String s)) {
            throw bad(name, "must be a string");
        }
        return s;
    }

    public boolean bool(String name, boolean dflt) throws DeviceConfigException {
        Object v = values.get(name);
        if (v == null) {
            return dflt;
        }
        if (!(v instanceof Boolean b)) {
            throw bad(name, "must be true or false");
        }
        return b;
    }

    public int integer(String name, int dflt, int min, int max) throws DeviceConfigException {
        Object v = values.get(name);
        if (v == null) {
            return dflt;
        }
        if (!(v instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue()) || n.longValue() < min
                || n.longValue() > max) {
            throw bad(name, "must be an integer from " + min + " to " + max);
        }
        return n.intValue();
    }

    /** A string chosen from {@code allowed}. */
    public String choice(String name, String dflt, String... allowed) throws DeviceConfigException {
        String s = string(name, dflt);
        for (String a : allowed) {
            if (a.equals(s)) {
                return s;
            }
        }
        throw bad(name, "'" + s + "' is not one of " + String.join(", ", allowed));
    }

    /** Wraps a problem found while using a value (an image that cannot be opened). */
    public DeviceConfigException error(String name, String problem) {
        return bad(name, problem);
    }
}
