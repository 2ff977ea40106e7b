package dev.ferry.core.migration;

import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VmStateVBufferTest {
    static final class Holder {
        byte[] data = new byte[0];
        int tail;
    }

    static final VmStateDescription<Holder> DESC = VmStateDescription.<Holder>builder("vb", 1)
            .vbuffer("msrs", 64, h -> h.data, (h, v) -> h.data = v)
            .u32("tail", h -> h.tail, (h, v) -> h.tail = v)
            .build();

    private static byte[] save(Holder h) throws Exception {
        ByteArraySaveStream out = new ByteArraySaveStream();
        DESC.save(h, out);
        return out.toByteArray();
    }

    @Test
    void wireIsLengthThenBytes() throws Exception {
        Holder h = new Holder();
        h.data = new byte[] {1, 2, 3};
        h.tail = 0x0a0b0c0d;
        assertArrayEquals(new byte[] {0, 0, 0, 3, 1, 2, 3, 0x0a, 0x0b, 0x0c, 0x0d}, save(h));
        Holder back = new Holder();
        DESC.load(back, new ByteArrayLoadStream(save(h)), 1);
        assertArrayEquals(h.data, back.data);
        assertEquals(h.tail, back.tail);
    }

    @Test
    void aLengthOverTheLimitIsRefusedBeforeAllocating() {
        byte[] wire = {0x7f, (byte) 0xff, (byte) 0xff, (byte) 0xff};
        MigrationException e = assertThrows(MigrationException.class,
                () -> DESC.load(new Holder(), new ByteArrayLoadStream(wire), 1));
        assertTrue(e.getMessage().contains("msrs") && e.getMessage().contains("exceeds 64"), e.getMessage());
    }

    @Test
    @SuppressWarnings("unchecked")
    void vmdescDescribesTheLengthAndTheBuffer() {
        Holder h = new Holder();
        h.data = new byte[5];
        List<Map<String, Object>> fields = (List<Map<String, Object>>) DESC.describe(h).get("fields");
        assertEquals("msrs_len", fields.get(0).get("name"));
        assertEquals("uint32", fields.get(0).get("type"));
        assertEquals("msrs", fields.get(1).get("name"));
        assertEquals("buffer", fields.get(1).get("type"));
        assertEquals(5, fields.get(1).get("size"));
        assertEquals("tail", fields.get(2).get("name"));
    }
}
