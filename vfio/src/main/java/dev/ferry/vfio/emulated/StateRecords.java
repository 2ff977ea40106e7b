package dev.ferry.vfio.emulated;

/**
 * The emulated device's migration data format, shared by its saving and resuming sessions: a
 * sequence of records {@code be32 tag, be32 index, be32 length, payload[length], be64 digest}
 * (the digest over head and payload, {@link ContentDigest#record}). Tag 0 is the header (payload:
 * be32 magic "FRVF", be32 version, be64 state bytes, be32 chunk size, be32 0), tag 1 a chunk of
 * state memory (index = chunk number), tag 2 the control state (be64 churn counter, be64 churn
 * generator, be32 n, n bytes of the subclass's control state), tag 3 the end (index = number of
 * chunk records). Also the chunk bit sets both sessions keep.
 */
final class StateRecords {
    static final int REC_HEAD = 12;
    static final int REC_TAIL = 8;
    static final int TAG_HEADER = 0;
    static final int TAG_CHUNK = 1;
    static final int TAG_CONTROL = 2;
    static final int TAG_END = 3;
    static final int MAGIC = 0x46525646; // "FRVF"
    static final int FORMAT_VERSION = 1;
    static final int HEADER_PAYLOAD = 24;
    /** Bytes of the control record before the subclass's part. */
    static final int CONTROL_PREFIX = 20;
    static final int CONTROL_MAX = 1 << 20;

    private StateRecords() {
    }

    static boolean test(long[] bits, int i) {
        return (bits[i >>> 6] & (1L << i)) != 0;
    }

    static void set(long[] bits, int i) {
        bits[i >>> 6] |= 1L << i;
    }

    static int takeFirst(long[] bits) {
        for (int w = 0; w < bits.length; w++) {
            if (bits[w] != 0) {
                int b = Long.numberOfTrailingZeros(bits[w]);
                bits[w] &= ~(1L << b);
                return w * 64 + b;
            }
        }
        return -1;
    }

    static String tagName(int tag) {
        return switch (tag) {
            case TAG_HEADER -> "header";
            case TAG_CHUNK -> "chunk";
            case TAG_CONTROL -> "control";
            case TAG_END -> "end";
            default -> "tag " + tag;
        };
    }
}
