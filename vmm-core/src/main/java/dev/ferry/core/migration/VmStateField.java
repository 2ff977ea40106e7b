package dev.ferry.core.migration;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One field of a {@link VmStateDescription}: how to put it, get it, and describe it in the
 * stream's vmdesc JSON. {@code sinceVersion} is the description version that added the field: an
 * older stream does not carry it.
 */
public interface VmStateField<T> {
    String name();

    /** The type name QEMU's vmdesc uses ({@code uint32}, {@code buffer}, ...). */
    String type();

    /** Size in bytes on the wire for {@code obj}. */
    int size(T obj);

    int sinceVersion();

    void save(T obj, SaveStream out) throws IOException;

    void load(T obj, LoadStream in) throws IOException, MigrationException;

    /**
     * Adds this field's entries to a vmdesc "fields" list: by default one
     * {@code {"name", "type", "size"}}. Fields QEMU describes otherwise (a counted buffer's length
     * field, an array of structs) add their own. The sizes of all entries (times "array_len"
     * where present) add up to the bytes {@link #save} writes.
     */
    default void describe(T obj, List<Map<String, Object>> entries) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("name", name());
        e.put("type", type());
        e.put("size", size(obj));
        entries.add(e);
    }
}
