package dev.ferry.migration.analyze;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the data of QEMU's block-migration section ("block", version 1; migration/block.c in
 * QEMU up to 9.0). It has no length, but its records are self-describing, so it can be skipped
 * safely:
 * <pre>
 * be64 (sector << 9 | flags), flags in the low 9 bits:
 *   DEVICE_BLOCK 0x01 : u8 len | device name | 1 MiB of data, unless ZERO_BLOCK 0x08 is set too
 *   PROGRESS     0x04 : nothing (a percentage in the sector bits)
 *   EOS          0x02 : end of this section's data
 * </pre>
 * Not thread-safe.
 */
final class BlockMigrationReader {
    static final long DEVICE_BLOCK = 0x01;
    static final long EOS = 0x02;
    static final long PROGRESS = 0x04;
    static final long ZERO_BLOCK = 0x08;
    static final int CHUNK = 1 << 20;
    static final int MAX_DEVICES = 1024;

    private final StreamInput in;
    private final Map<String, long[]> devices = new LinkedHashMap<>(); // name -> {blocks, zero blocks}

    BlockMigrationReader(StreamInput in) {
        this.in = in;
    }

    void readSection() throws IOException, AnalysisException {
        while (true) {
            long at = in.offset();
            long header = in.be64("a block-migration record header");
            long flags = header & 0x1ff;
            if ((flags & DEVICE_BLOCK) != 0) {
                String name = in.countedString(0, "a block device name");
                long[] c = devices.get(name);
                if (c == null) {
                    if (devices.size() == MAX_DEVICES) {
                        throw AnalysisException.malformed(at, "block: more than " + MAX_DEVICES + " block devices");
                    }
                    c = new long[2];
                    devices.put(name, c);
                }
                if ((flags & ZERO_BLOCK) != 0) {
                    c[1]++;
                } else {
                    in.skip(CHUNK, "a 1 MiB block of disk " + name);
                    c[0]++;
                }
            } else if ((flags & PROGRESS) == 0 && (flags & EOS) == 0) {
                throw AnalysisException.malformed(at, "block: record at offset " + at + " has unknown flags 0x"
                        + Long.toHexString(flags));
            }
            if ((flags & EOS) != 0) {
                return;
            }
        }
    }

    List<DiskSummary> summaries() {
        List<DiskSummary> out = new ArrayList<>();
        devices.forEach((n, c) -> out.add(new DiskSummary(n, c[0], c[1])));
        return List.copyOf(out);
    }
}
