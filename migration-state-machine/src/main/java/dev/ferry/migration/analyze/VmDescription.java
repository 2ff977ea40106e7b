package dev.ferry.migration.analyze;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.migration.stream.Qevm;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The trailing VMDESCRIPTION of a stream: the JSON in which the source described every device
 * section it wrote (QEMU's {@code qemu_savevm_state_complete_precopy_non_iterable}). Device
 * sections carry no length, so this JSON is the only way to know where one ends.
 * <pre>
 * ... | 0x00 EOF | 0x06 | be32 len | len bytes of JSON (no NUL) | EOF of file
 *
 * {"page_size": 4096,
 *  "devices": [{"name": idstr, "instance_id": n, "vmsd_name": ..., "version": v,
 *               "fields": [...], "subsections": [...]}, ...],
 *  "configuration": {...}}                                  (QEMU 10 only; not needed here)
 * </pre>
 * It is found from the end of the file, the way QEMU's {@code analyze-migration.py} finds it: the
 * last NUL byte of the tail (the EOF marker or a byte of the length), then the JSON's '{' at most
 * six bytes later with {@code 0x06} and the be32 length just before it. Where QEMU's script takes
 * the first '{', this takes the last candidate in those six bytes that passes the marker check,
 * so a length byte that happens to equal '{' does not hide the JSON: the JSON's own '{' comes
 * after the length, and the JSON QEMU and Ferry write has no second '{' in its next bytes.
 * Immutable.
 */
public final class VmDescription {
    /** How much of the file's tail is searched; QEMU's vmdesc is limited to this too. */
    static final int TAIL = Qevm.MAX_VMDESC_LENGTH + 16;
    private static final int CHUNK = 1 << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final long offset;
    private final long length;
    private final JsonNode root;
    private final int pageSize;
    private final Map<String, JsonNode> devices;

    private VmDescription(long offset, long length, JsonNode root, int pageSize, Map<String, JsonNode> devices) {
        this.offset = offset;
        this.length = length;
        this.root = root;
        this.pageSize = pageSize;
        this.devices = devices;
    }

    /** File offset of the {@code 0x06} VMDESCRIPTION marker. */
    public long offset() {
        return offset;
    }

    /** Length of the JSON in bytes, as the be32 before it says. */
    public long length() {
        return length;
    }

    /** The whole JSON document (read-only by convention; callers must not modify it). */
    public JsonNode json() {
        return root;
    }

    /** Target page size the source used; RAM records are split into offset and flags with it. */
    public int pageSize() {
        return pageSize;
    }

    public int deviceCount() {
        return devices.size();
    }

    /** The description of the section (idstr, instance), if the source wrote one. */
    Optional<JsonNode> device(String idstr, long instanceId) {
        return Optional.ofNullable(devices.get(key(idstr, instanceId)));
    }

    private static String key(String idstr, long instanceId) {
        return idstr + '\0' + instanceId;
    }

    /**
     * Finds and parses the vmdesc at the end of the file, or returns empty when the file has none
     * (a stream truncated before it, or one whose source suppressed it). A candidate that passes
     * the marker check but is not the JSON QEMU writes is an error: the file claims a vmdesc and
     * the claim is false.
     */
    static Optional<VmDescription> locate(SeekableByteChannel ch, long size) throws IOException, AnalysisException {
        long headerEnd = 8;
        long floor = Math.max(headerEnd, size - TAIL);
        long nul = -1;
        ByteBuffer chunk = ByteBuffer.allocate(CHUNK);
        for (long end = size; end > floor && nul < 0; ) {
            long start = Math.max(floor, end - CHUNK);
            read(ch, chunk, start, (int) (end - start));
            for (int i = chunk.limit() - 1; i >= 0; i--) {
                if (chunk.get(i) == 0) {
                    nul = start + i;
                    break;
                }
            }
            end = start;
        }
        if (nul < 0) {
            return Optional.empty();
        }
        // Candidates: a '{' at most 6 bytes after the NUL (EOF, 0x06, 4 length bytes, '{').
        long window = Math.min(size, nul + 7);
        read(ch, chunk, nul, (int) (window - nul));
        for (long p = window - 1; p > nul; p--) {
            if (chunk.get((int) (p - nul)) != '{' || p - 5 < headerEnd) {
                continue;
            }
            ByteBuffer head = ByteBuffer.allocate(5);
            read(ch, head, p - 5, 5);
            if (head.get(0) != Qevm.VMDESCRIPTION) {
                continue;
            }
            long len = head.getInt(1) & 0xffff_ffffL;
            if (len > Qevm.MAX_VMDESC_LENGTH || p + len > size) {
                continue;
            }
            ByteBuffer json = ByteBuffer.allocate((int) len);
            read(ch, json, p, (int) len);
            return Optional.of(parse(p - 5, json.array()));
        }
        return Optional.empty();
    }

    /** Parses vmdesc JSON found at {@code markerOffset}; also used when the walk meets it after EOF. */
    static VmDescription parse(long markerOffset, byte[] json) throws AnalysisException {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw AnalysisException.malformed(markerOffset, "the vmdesc at offset " + markerOffset
                    + " is not valid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw AnalysisException.malformed(markerOffset, "the vmdesc at offset " + markerOffset
                    + " cannot be read: " + e.getMessage());
        }
        String where = "the vmdesc at offset " + markerOffset;
        if (root == null || !root.isObject()) {
            throw AnalysisException.malformed(markerOffset, where + " is not a JSON object");
        }
        JsonNode ps = root.get("page_size");
        if (ps == null || !ps.canConvertToInt() || !ps.isIntegralNumber()) {
            throw AnalysisException.malformed(markerOffset, where + " has no integer \"page_size\"");
        }
        int pageSize = ps.intValue();
        if (pageSize < 1024 || pageSize > (1 << 20) || Integer.bitCount(pageSize) != 1) {
            throw AnalysisException.malformed(markerOffset, where + " has page_size " + pageSize
                    + "; expected a power of two from 1024 to 1048576");
        }
        JsonNode list = root.get("devices");
        if (list == null || !list.isArray()) {
            throw AnalysisException.malformed(markerOffset, where + " has no \"devices\" list");
        }
        Map<String, JsonNode> devices = new HashMap<>();
        for (JsonNode d : list) {
            JsonNode name = d.get("name");
            JsonNode inst = d.get("instance_id");
            if (name == null || !name.isTextual() || inst == null || !inst.isIntegralNumber() || !d.has("fields")) {
                throw AnalysisException.malformed(markerOffset, where + " has a device entry without \"name\", "
                        + "integer \"instance_id\" and \"fields\": " + abbreviate(d.toString()));
            }
            if (devices.putIfAbsent(key(name.asText(), inst.asLong()), d) != null) {
                throw AnalysisException.malformed(markerOffset, where + " describes " + name.asText() + " instance "
                        + inst.asLong() + " twice");
            }
        }
        return new VmDescription(markerOffset, json.length, root, pageSize, Map.copyOf(devices));
    }

    static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 77) + "...";
    }

    private static void read(SeekableByteChannel ch, ByteBuffer dst, long at, int n) throws IOException {
        dst.clear().limit(n);
        ch.position(at);
        while (dst.hasRemaining()) {
            if (ch.read(dst) < 0) {
                throw new IOException("the file shrank while it was read (offset " + (at + dst.position()) + ")");
            }
        }
        dst.flip();
    }
}
