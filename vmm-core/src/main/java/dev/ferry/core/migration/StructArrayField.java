package dev.ferry.core.migration;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import java.util.function.ToIntFunction;

/**
 * An array of structs: QEMU's {@code VMSTATE_STRUCT_ARRAY} (a fixed count) and
 * {@code VMSTATE_STRUCT_VARRAY_UINT32} (a count an earlier field carried). On the wire the elements
 * follow each other with no length and no separator, each as its description writes it alone:
 * <pre>
 * element 0: fields... | subsections... | element 1: fields... | subsections... | ...
 * </pre>
 * Both sides know the count: it is fixed, or the destination has already loaded the field that
 * holds it. The destination refuses a count above {@code maxCount} before it touches an element,
 * so a hostile count allocates nothing. Elements load with their description's own version (the
 * stream does not carry one), and each element's post-load runs when that element ends.
 *
 * @param <T> the object holding the array
 * @param <E> an element
 */
final class StructArrayField<T, E> implements VmStateField<T> {
    private final String owner;
    private final String name;
    private final VmStateDescription<E> element;
    private final ToIntFunction<T> count;
    private final int maxCount;
    private final BiFunction<T, Integer, E> elementAt;
    private final int sinceVersion;

    StructArrayField(String owner, String name, VmStateDescription<E> element, ToIntFunction<T> count, int maxCount,
                     BiFunction<T, Integer, E> elementAt, int sinceVersion) {
        if (maxCount < 0) {
            throw new IllegalArgumentException(owner + ": " + name + ": negative maximum count " + maxCount);
        }
        this.owner = owner;
        this.name = name;
        this.element = element;
        this.count = count;
        this.maxCount = maxCount;
        this.elementAt = elementAt;
        this.sinceVersion = sinceVersion;
    }

    VmStateDescription<E> element() {
        return element;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return "struct";
    }

    @Override
    public int sinceVersion() {
        return sinceVersion;
    }

    /** All elements' bytes, subsections included. */
    @Override
    public int size(T obj) {
        long total = 0;
        for (int i = 0, n = sourceCount(obj); i < n; i++) {
            total += VmStateDescription.describedSize(element.describe(elementAt.apply(obj, i)));
        }
        return Math.toIntExact(total);
    }

    @Override
    public void save(T obj, SaveStream out) throws IOException {
        for (int i = 0, n = sourceCount(obj); i < n; i++) {
            element.save(elementAt.apply(obj, i), out);
        }
    }

    @Override
    public void load(T obj, LoadStream in) throws IOException, MigrationException {
        int n = count.applyAsInt(obj);
        if (n < 0 || n > maxCount) {
            throw new MigrationException(owner + ": " + name + ": the stream says " + Integer.toUnsignedString(n)
                    + " elements, more than the " + maxCount + " this build accepts");
        }
        for (int i = 0; i < n; i++) {
            E e = elementAt.apply(obj, i);
            try {
                element.load(e, in, element.version());
            } catch (MigrationException ex) {
                throw new MigrationException(owner + ": " + name + "[" + i + "]: " + ex.getMessage(), ex);
            }
        }
    }

    /**
     * What QEMU's {@code vmstate_save_state_v} writes for an array of structs: per element it opens
     * an entry ({@code vmsd_desc_field_start}) holding the name, then "array_len" or "index" when the
     * array has more than one element, the type "struct", the element's own description under
     * "struct" (written by the nested save), and the element's byte count as "size". When the
     * array is compressible ({@code vmsd_can_compress}: the element's description has no
     * subsections and neither have the structs among its fields, at any depth) only element 0 is
     * described, with "array_len" = n; otherwise every element gets its own entry with "index" = i.
     * An empty array has no entry, a single element no "array_len" and no "index". Ferry also
     * falls back to one entry per element when the elements' descriptions differ (a variable-size
     * field inside), where a compressed entry would describe the others wrongly.
     */
    @Override
    public void describe(T obj, List<Map<String, Object>> entries) {
        int n = sourceCount(obj);
        List<Map<String, Object>> elements = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            elements.add(element.describe(elementAt.apply(obj, i)));
        }
        boolean compressed = n > 1 && element.compressible() && elements.stream().allMatch(elements.get(0)::equals);
        if (n == 1 || compressed) {
            entries.add(entry(compressed ? "array_len" : null, n, elements.get(0)));
            return;
        }
        for (int i = 0; i < n; i++) {
            entries.add(entry("index", i, elements.get(i)));
        }
    }

    private Map<String, Object> entry(String arrayKey, int arrayValue, Map<String, Object> struct) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("name", name);
        if (arrayKey != null) {
            e.put(arrayKey, arrayValue);
        }
        e.put("type", "struct");
        e.put("struct", struct);
        e.put("size", Math.toIntExact(VmStateDescription.describedSize(struct)));
        return e;
    }

    /** The count on the source; more than the destination accepts is this build's own bug. */
    private int sourceCount(T obj) {
        int n = count.applyAsInt(obj);
        if (n < 0 || n > maxCount) {
            throw new IllegalStateException(owner + ": " + name + ": " + n + " elements, outside 0.." + maxCount);
        }
        return n;
    }
}
