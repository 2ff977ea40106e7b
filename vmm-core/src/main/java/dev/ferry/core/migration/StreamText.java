package dev.ferry.core.migration;

import java.nio.charset.StandardCharsets;

/**
 * Text a peer wrote (a section's idstr, a RAM block's name, a subsection's name) as it may appear
 * in an error, {@code error-desc}, a QMP event or the log: printable ASCII as it is, a backslash
 * as {@code \\}, every other byte — control characters, bytes above 0x7e, invalid UTF-8 — as
 * {@code \xNN}; longer than {@value #MAX_SHOWN} bytes, the rest is cut and the whole length said
 * ({@code name... (255 bytes)}). So a
 * hostile stream can neither forge a log line, drive a terminal, nor fill a message.
 * Stateless; any thread.
 */
public final class StreamText {
    /** Bytes of a name shown before it is cut (QEMU's idstrs are at most 255, its names far less). */
    public static final int MAX_SHOWN = 64;

    private StreamText() {
    }

    /** {@code bytes[0, length)} escaped and cut. */
    public static String escape(byte[] bytes, int length) {
        return escape(bytes, length, MAX_SHOWN);
    }

    /**
     * {@code bytes[0, length)} escaped, cut after {@code max} bytes (a reader such as
     * {@code ferry analyze} shows a whole counted string: at most 255 bytes).
     */
    public static String escape(byte[] bytes, int length, int max) {
        int shown = Math.min(length, max);
        StringBuilder sb = new StringBuilder(shown + 16);
        for (int i = 0; i < shown; i++) {
            int b = bytes[i] & 0xff;
            if (b == '\\') {
                sb.append("\\\\");
            } else if (b >= 0x20 && b < 0x7f) {
                sb.append((char) b);
            } else {
                sb.append(String.format("\\x%02x", b));
            }
        }
        if (length > shown) {
            sb.append("... (").append(length).append(" bytes)");
        }
        return sb.toString();
    }

    /** All of {@code bytes}, escaped and cut. */
    public static String escape(byte[] bytes) {
        return escape(bytes, bytes.length);
    }

    /** A string that came from the peer (decoded already), escaped by its UTF-8 bytes. */
    public static String escape(String s) {
        return escape(s.getBytes(StandardCharsets.UTF_8));
    }
}
