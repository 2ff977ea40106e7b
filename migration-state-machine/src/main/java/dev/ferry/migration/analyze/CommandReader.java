package dev.ferry.migration.analyze;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads COMMAND sections (QEMU's {@code qemu_savevm_command_send}) and counts them by name. Their
 * payload has a length, so each is skipped, except:
 * <pre>
 * 0x08 | be16 cmd | be16 len | len bytes
 *   cmd  1 OPEN_RETURN_PATH, 2 PING (be32), 4 POSTCOPY_LISTEN, 5 POSTCOPY_RUN, 6 POSTCOPY_RAM_DISCARD,
 *        8 ENABLE_COLO, 9 POSTCOPY_RESUME, 10 RECV_BITMAP, 11 SWITCHOVER_START (QEMU 10)
 *   cmd  3 POSTCOPY_ADVISE : len 0, or 16 = be64 page-size summary | be64 target page size
 *                            (a summary other than the target page size means MEM_SIZE entries
 *                             carry an extra be64 page size: not supported)
 *   cmd  7 PACKAGED        : len 4 = be32 n, followed by n bytes of a nested stream (skipped)
 * </pre>
 * Numbers 0 and above 11 are refused, as QEMU's loader refuses them. Not thread-safe.
 */
final class CommandReader {
    private static final String[] NAMES = {null, "OPEN_RETURN_PATH", "PING", "POSTCOPY_ADVISE", "POSTCOPY_LISTEN",
            "POSTCOPY_RUN", "POSTCOPY_RAM_DISCARD", "PACKAGED", "ENABLE_COLO", "POSTCOPY_RESUME", "RECV_BITMAP",
            "SWITCHOVER_START"};
    private static final int POSTCOPY_ADVISE = 3;
    private static final int PACKAGED = 7;

    private final StreamInput in;
    private final Map<String, Integer> counts = new TreeMap<>();
    private long packagedBytes;

    CommandReader(StreamInput in) {
        this.in = in;
    }

    /** Reads one command; {@code at} is the offset of its 0x08 marker, already consumed. */
    void read(long at) throws IOException, AnalysisException {
        int cmd = in.be16("a command number");
        int len = in.be16("a command length");
        if (cmd == 0 || cmd >= NAMES.length) {
            throw AnalysisException.malformed(at, "unknown command 0x" + Integer.toHexString(cmd) + " at offset " + at);
        }
        if (cmd == PACKAGED) {
            if (len != 4) {
                throw AnalysisException.malformed(at, "PACKAGED command at offset " + at + " with length " + len);
            }
            long blob = in.be32("the length of the postcopy package");
            in.skip(blob, "the postcopy package (" + blob + " bytes)");
            packagedBytes += blob;
        } else if (cmd == POSTCOPY_ADVISE && len == 16) {
            long summary = in.be64("the postcopy page-size summary");
            long targetPage = in.be64("the postcopy target page size");
            if (summary != targetPage) {
                throw AnalysisException.unsupported(at, "postcopy with RAM blocks of other page sizes (summary 0x"
                        + Long.toHexString(summary) + ") adds a page size to each MEM_SIZE entry, which the "
                        + "analyzer does not read");
            }
        } else {
            in.skip(len, NAMES[cmd] + " command data (" + len + " bytes)");
        }
        counts.merge(NAMES[cmd], 1, Integer::sum);
    }

    /** Commands seen, by name. */
    Map<String, Integer> counts() {
        return Map.copyOf(counts);
    }

    /** What was skipped without being analyzed, for the analysis' notes. */
    List<String> notes() {
        if (packagedBytes == 0) {
            return List.of();
        }
        return List.of(counts.get("PACKAGED") + " postcopy package(s) of " + packagedBytes + " bytes in all were "
                + "skipped: the device states inside them are not analyzed");
    }
}
