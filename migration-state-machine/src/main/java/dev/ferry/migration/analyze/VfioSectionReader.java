package dev.ferry.migration.analyze;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the data of a VFIO device's section (QEMU's {@code hw/vfio/migration.c}, idstr
 * {@code <device>/vfio}). Its data is a sequence of big-endian u64 tags:
 * <pre>
 * 0xffffffffef100001 END_OF_STATE       ends this section's data
 * 0xffffffffef100002 CONFIG_STATE       device config (PCI config space, MSI-X), up to END_OF_STATE
 * 0xffffffffef100003 SETUP_STATE        save_setup happened
 * 0xffffffffef100004 DATA_STATE         be64 length, then that many bytes read from the data fd
 * 0xffffffffef100005 INIT_DATA_SENT     the initial pre-copy data is out (switchover-ack); ends the data
 * 0xffffffffef100006 CONFIG_LOAD_READY  (multifd device state) nothing follows
 * </pre>
 * The config payload has no length (QEMU writes a vmstate there), so it is crossed by looking for
 * the END_OF_STATE tag that closes it. QEMU writes the config as a FULL section reusing the live
 * section's id; the analyzer accepts that for VFIO sections only. Not thread-safe.
 */
final class VfioSectionReader {
    static final long END_OF_STATE = 0xffffffffef100001L;
    static final long CONFIG_STATE = 0xffffffffef100002L;
    static final long SETUP_STATE = 0xffffffffef100003L;
    static final long DATA_STATE = 0xffffffffef100004L;
    static final long INIT_DATA_SENT = 0xffffffffef100005L;
    static final long CONFIG_LOAD_READY = 0xffffffffef100006L;
    /** A DATA_STATE block larger than this is refused (QEMU reads at most its 1 MiB buffer per block). */
    static final long MAX_BLOCK = 64L << 20;
    static final long MAX_CONFIG = 1L << 20;
    static final int MAX_DEVICES = 1024;

    private final StreamInput in;
    private final Map<String, long[]> devices = new LinkedHashMap<>(); // key -> {instance, blocks, bytes, config, init}

    VfioSectionReader(StreamInput in) {
        this.in = in;
    }

    static boolean isVfio(String idstr) {
        return idstr.endsWith("/vfio");
    }

    void readSection(String idstr, long instance) throws IOException, AnalysisException {
        String key = idstr + "#" + instance;
        long[] c = devices.get(key);
        if (c == null) {
            if (devices.size() == MAX_DEVICES) {
                throw AnalysisException.malformed(in.offset(), "more than " + MAX_DEVICES + " VFIO devices");
            }
            c = new long[] {instance, 0, 0, 0, 0};
            devices.put(key, c);
        }
        while (true) {
            long at = in.offset();
            long tag = in.be64("a VFIO tag of " + idstr);
            if (tag == END_OF_STATE) {
                return;
            } else if (tag == INIT_DATA_SENT) {
                c[4] = 1;
                return;
            } else if (tag == SETUP_STATE || tag == CONFIG_LOAD_READY) {
                continue;
            } else if (tag == DATA_STATE) {
                long len = in.be64("the length of a VFIO data block of " + idstr);
                if (len < 0 || len > MAX_BLOCK) {
                    throw AnalysisException.malformed(at, idstr + ": VFIO data block at offset " + at + " claims "
                            + Long.toUnsignedString(len) + " bytes (at most " + MAX_BLOCK + ")");
                }
                in.skip(len, "a VFIO data block of " + idstr + " (" + len + " bytes)");
                c[1]++;
                c[2] += len;
            } else if (tag == CONFIG_STATE) {
                c[3] += skipConfig(idstr, at);
                return;
            } else {
                throw AnalysisException.malformed(at, idstr + ": unknown VFIO tag 0x" + Long.toHexString(tag)
                        + " at offset " + at);
            }
        }
    }

    /** Skips to and past the END_OF_STATE that closes a config payload; returns the payload size. */
    private long skipConfig(String idstr, long at) throws IOException, AnalysisException {
        long start = in.offset();
        long window = 0;
        int have = 0;
        while (true) {
            if (in.offset() - start > MAX_CONFIG + 8) {
                throw AnalysisException.malformed(at, idstr + ": VFIO config state at offset " + at
                        + " has no END_OF_STATE within " + MAX_CONFIG + " bytes");
            }
            window = (window << 8) | in.u8("the VFIO config state of " + idstr);
            if (++have >= 8 && window == END_OF_STATE) {
                return in.offset() - start - 8;
            }
        }
    }

    List<VfioDeviceSummary> summaries() {
        List<VfioDeviceSummary> out = new ArrayList<>();
        devices.forEach((k, c) -> out.add(new VfioDeviceSummary(k.substring(0, k.lastIndexOf('#')), c[0], c[1], c[2],
                c[3], c[4] != 0)));
        return List.copyOf(out);
    }
}
