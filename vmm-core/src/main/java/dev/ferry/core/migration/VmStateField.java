package dev.ferry.core.migration;

import java.io.IOException;

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
}
