package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * A command's {@code "arguments"} object with typed accessors that refuse bad input with the
 * errors QEMU's QAPI input visitor gives, word for word:
 * <ul>
 *   <li>absent required member: {@code Parameter 'uri' is missing};</li>
 *   <li>wrong JSON type (null included): {@code Invalid parameter type for 'uri', expected: string}
 *       (or {@code boolean}, {@code integer}, {@code array}, {@code object});</li>
 *   <li>enum value not allowed: {@code Parameter 'mode' does not accept value 'x'};</li>
 *   <li>integer out of the accessor's range: {@code Parameter 'n' expects a value between 0 and 9};</li>
 *   <li>member nobody read: {@code Parameter 'foo' is unexpected}, from
 *       {@link #checkNoOtherArguments()}.</li>
 * </ul>
 * Members of nested objects are named as QEMU names them: {@code capabilities[0].state}.
 * All errors are {@value QmpError#GENERIC_ERROR}.
 *
 * <p>An accessor marks its member as read; {@link #checkNoOtherArguments()} then refuses whatever
 * is left, so a handler reads all its parameters first, calls it, and only then acts.
 *
 * <p>Not thread-safe; a handler uses its instance on the dispatcher thread.
 */
public final class QmpArgs {
    private final ObjectNode json;
    private final String path;
    private final Set<String> read = new HashSet<>();

    private QmpArgs(ObjectNode json, String path) {
        this.json = json;
        this.path = path;
    }

    /** Top-level arguments; {@code null} stands for an absent {@code "arguments"} member. */
    public static QmpArgs of(ObjectNode arguments) {
        return new QmpArgs(arguments == null ? QmpWire.NODES.objectNode() : arguments, "");
    }

    /** The raw arguments, for passing through; treat as read-only and mark members read yourself. */
    public ObjectNode json() {
        return json;
    }

    /** Whether the member is present (even if null). Does not mark it read. */
    public boolean has(String name) {
        return json.has(name);
    }

    public String requiredString(String name) throws QmpError {
        return string(name, required(name));
    }

    /** The string, or {@code defaultValue} (may be null) when absent. */
    public String optionalString(String name, String defaultValue) throws QmpError {
        JsonNode value = optional(name);
        return value == null ? defaultValue : string(name, value);
    }

    public boolean requiredBool(String name) throws QmpError {
        return bool(name, required(name));
    }

    public boolean optionalBool(String name, boolean defaultValue) throws QmpError {
        JsonNode value = optional(name);
        return value == null ? defaultValue : bool(name, value);
    }

    /** An integer within {@code [min, max]}. */
    public long requiredLong(String name, long min, long max) throws QmpError {
        return integer(name, required(name), min, max);
    }

    /** An integer within {@code [min, max]}, or {@code defaultValue} (not range-checked) when absent. */
    public long optionalLong(String name, long defaultValue, long min, long max) throws QmpError {
        JsonNode value = optional(name);
        return value == null ? defaultValue : integer(name, value, min, max);
    }

    public int requiredInt(String name, int min, int max) throws QmpError {
        return (int) requiredLong(name, min, max);
    }

    public int optionalInt(String name, int defaultValue, int min, int max) throws QmpError {
        return (int) optionalLong(name, defaultValue, min, max);
    }

    /** A string that must be one of {@code values} (a QAPI enum). */
    public String requiredEnum(String name, Collection<String> values) throws QmpError {
        return enumValue(name, requiredString(name), values);
    }

    public String optionalEnum(String name, Collection<String> values, String defaultValue) throws QmpError {
        String value = optionalString(name, null);
        return value == null ? defaultValue : enumValue(name, value, values);
    }

    /** A list of strings; empty when absent. */
    public List<String> optionalStringList(String name) throws QmpError {
        JsonNode list = optional(name);
        List<String> strings = new ArrayList<>();
        if (list != null) {
            int index = 0;
            for (JsonNode element : array(name, list)) {
                strings.add(string(name + "[" + index++ + "]", element));
            }
        }
        return strings;
    }

    /** A list of objects, each with its own accessors (and its own {@link #checkNoOtherArguments()}). */
    public List<QmpArgs> requiredObjectList(String name) throws QmpError {
        return objects(name, array(name, required(name)));
    }

    /** Like {@link #requiredObjectList}, empty when absent. */
    public List<QmpArgs> optionalObjectList(String name) throws QmpError {
        JsonNode list = optional(name);
        return list == null ? List.of() : objects(name, array(name, list));
    }

    /** A nested object, or null when absent. */
    public QmpArgs optionalObject(String name) throws QmpError {
        JsonNode value = optional(name);
        if (value == null) {
            return null;
        }
        if (!value.isObject()) {
            throw wrongType(name, "object");
        }
        return new QmpArgs((ObjectNode) value, fullName(name));
    }

    /** Refuses the first member no accessor has read: {@code Parameter 'foo' is unexpected}. */
    public void checkNoOtherArguments() throws QmpError {
        for (Iterator<String> names = json.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!read.contains(name)) {
                throw QmpError.generic("Parameter '%s' is unexpected", fullName(name));
            }
        }
    }

    /** Refuses the first member not in {@code declared}; for commands registered with parameter names. */
    void checkDeclared(Set<String> declared) throws QmpError {
        for (Iterator<String> names = json.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!declared.contains(name)) {
                throw QmpError.generic("Parameter '%s' is unexpected", fullName(name));
            }
        }
    }

    private JsonNode required(String name) throws QmpError {
        JsonNode value = optional(name);
        if (value == null) {
            throw QmpError.generic("Parameter '%s' is missing", fullName(name));
        }
        return value;
    }

    private JsonNode optional(String name) {
        Objects.requireNonNull(name, "name");
        read.add(name);
        return json.get(name);
    }

    private String string(String name, JsonNode value) throws QmpError {
        if (!value.isTextual()) {
            throw wrongType(name, "string");
        }
        return value.textValue();
    }

    private boolean bool(String name, JsonNode value) throws QmpError {
        if (!value.isBoolean()) {
            throw wrongType(name, "boolean");
        }
        return value.booleanValue();
    }

    private long integer(String name, JsonNode value, long min, long max) throws QmpError {
        if (!value.isIntegralNumber() || !value.canConvertToLong()) {
            throw wrongType(name, "integer");
        }
        long number = value.longValue();
        if (number < min || number > max) {
            throw QmpError.generic("Parameter '%s' expects a value between %d and %d", fullName(name), min, max);
        }
        return number;
    }

    private String enumValue(String name, String value, Collection<String> values) throws QmpError {
        if (!values.contains(value)) {
            throw QmpError.generic("Parameter '%s' does not accept value '%s'", fullName(name), value);
        }
        return value;
    }

    private JsonNode array(String name, JsonNode value) throws QmpError {
        if (!value.isArray()) {
            throw wrongType(name, "array");
        }
        return value;
    }

    private List<QmpArgs> objects(String name, JsonNode list) throws QmpError {
        List<QmpArgs> objects = new ArrayList<>(list.size());
        for (int index = 0; index < list.size(); index++) {
            JsonNode element = list.get(index);
            String elementName = name + "[" + index + "]";
            if (!element.isObject()) {
                throw wrongType(elementName, "object");
            }
            objects.add(new QmpArgs((ObjectNode) element, fullName(elementName)));
        }
        return objects;
    }

    private QmpError wrongType(String name, String expected) {
        return QmpError.generic("Invalid parameter type for '%s', expected: %s", fullName(name), expected);
    }

    private String fullName(String name) {
        return path.isEmpty() ? name : path + "." + name;
    }
}
