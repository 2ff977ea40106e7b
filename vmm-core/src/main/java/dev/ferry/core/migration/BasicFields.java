package dev.ferry.core.migration;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Function;
import java.util.function.ObjIntConsumer;
import java.util.function.ObjLongConsumer;
import java.util.function.ToIntFunction;
import java.util.function.ToLongFunction;

/**
 * The fields {@link VmStateDescription.Builder} makes from getters and setters: integers of every
 * width, bools, and fixed and counted byte buffers. A setter's {@link IllegalArgumentException}
 * (a value the device cannot take) fails the load with the field's name.
 */
final class BasicFields {
    private BasicFields() {
    }

    record IntField<T>(String name, String type, int width, int sinceVersion, ToIntFunction<T> get,
                               ObjIntConsumer<T> set) implements VmStateField<T> {
        @Override
        public int size(T obj) {
            return width;
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            int v = get.applyAsInt(obj);
            switch (width) {
                case 1 -> out.putU8(v);
                case 2 -> out.putBe16(v);
                default -> out.putBe32(v);
            }
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException, MigrationException {
            int v = switch (width) {
                case 1 -> in.getU8();
                case 2 -> in.getBe16();
                default -> in.getBe32();
            };
            try {
                set.accept(obj, v);
            } catch (IllegalArgumentException e) {
                throw new MigrationException("field " + name + ": " + e.getMessage(), e);
            }
        }
    }

    record LongField<T>(String name, String type, int sinceVersion, ToLongFunction<T> get,
                                ObjLongConsumer<T> set) implements VmStateField<T> {
        @Override
        public int size(T obj) {
            return 8;
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            out.putBe64(get.applyAsLong(obj));
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException, MigrationException {
            long v = in.getBe64();
            try {
                set.accept(obj, v);
            } catch (IllegalArgumentException e) {
                throw new MigrationException("field " + name + ": " + e.getMessage(), e);
            }
        }
    }

    record VBufferField<T>(String name, int maxSize, int sinceVersion, Function<T, byte[]> get,
                                   BiConsumer<T, byte[]> set) implements VmStateField<T> {
        @Override
        public String type() {
            return "buffer";
        }

        /** The buffer's own size in the vmdesc (its length field is described separately). */
        @Override
        public int size(T obj) {
            return get.apply(obj).length;
        }

        @Override
        public void describe(T obj, List<Map<String, Object>> entries) {
            Map<String, Object> len = new LinkedHashMap<>();
            len.put("name", name + "_len");
            len.put("type", "uint32");
            len.put("size", 4);
            entries.add(len);
            VmStateField.super.describe(obj, entries);
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            byte[] b = get.apply(obj);
            if (b.length > maxSize) {
                throw new IllegalStateException(name + ": " + b.length + " bytes, more than the declared " + maxSize);
            }
            out.putBe32(b.length);
            out.putBytes(b);
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException, MigrationException {
            int len = in.getBe32();
            if (len < 0 || len > maxSize) {
                throw new MigrationException("field " + name + ": length " + (len & 0xffffffffL) + " exceeds " + maxSize);
            }
            byte[] b = new byte[len];
            in.getBytes(b, 0, len);
            try {
                set.accept(obj, b);
            } catch (IllegalArgumentException e) {
                throw new MigrationException("field " + name + ": " + e.getMessage(), e);
            }
        }
    }

    record BufferField<T>(String name, int size, int sinceVersion, Function<T, byte[]> get,
                                  BiConsumer<T, byte[]> set) implements VmStateField<T> {
        @Override
        public String type() {
            return "buffer";
        }

        @Override
        public int size(T obj) {
            return size;
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            byte[] b = get.apply(obj);
            if (b.length != size) {
                throw new IllegalStateException(name + ": buffer of " + b.length + " bytes, declared " + size);
            }
            out.putBytes(b);
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException {
            byte[] b = new byte[size];
            in.getBytes(b, 0, size);
            set.accept(obj, b);
        }
    }
}
