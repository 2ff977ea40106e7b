package dev.ferry.vmm.qmp;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;

import java.util.List;

/**
 * Cuts QMP's input byte stream into one frame per top-level JSON value, the way QEMU's JSON
 * streamer delimits messages, without parsing them: values need no separator
 * ({@code {"execute":"a"}{"execute":"b"}} is two messages) and may arrive in any split.
 * Emits a retained {@link ByteBuf} per frame (the reader parses and releases it) or an
 * {@link InputError} when the input can only be refused.
 *
 * <p>Framing rules:
 * <ul>
 *   <li>Between messages, whitespace is skipped. {@code {} or {@code [} opens a structured message
 *       that ends when its brackets balance; brackets inside strings, double- or single-quoted
 *       (QEMU accepts both) with backslash escapes, do not count.</li>
 *   <li>Anything else starts a bare message (a scalar such as {@code 42}, a quoted string, or
 *       garbage) that ends before whitespace or a structural character; a lone {@code }} {@code ]}
 *       {@code ,} {@code :} is a message by itself. The parser then refuses it.</li>
 *   <li>An ASCII control character other than tab, CR and LF, or a byte {@code 0xFE}/{@code 0xFF},
 *       is a lexical error anywhere: the message in progress is dropped and framing restarts after
 *       that byte. This is the reset that QMP's spec (section 2.6, "Forcing the JSON parser into
 *       known-good state") tells clients to use.</li>
 *   <li>A message nested deeper than {@value #MAX_NESTING} brackets and braces is refused once,
 *       in QEMU's words, and skipped to its end like an over-long one.</li>
 *   <li>A message longer than {@code maxFrameBytes} is refused once, as soon as it is detected, and
 *       the rest of it is skipped without being buffered, so the stream stays in step.</li>
 * </ul>
 * Netty's {@code JsonObjectDecoder} is not used because its error state is final (it discards all
 * later input, which would cost the connection) and it does not know single-quoted strings.
 *
 * <p>Thread: the channel's event loop, like every Netty decoder.
 */
final class QmpJsonFramer extends ByteToMessageDecoder {
    /**
     * QEMU's JSON streamer refuses a message with more open brackets and braces than this
     * ({@code MAX_NESTING}), saying "JSON nesting depth limit exceeded"; the parser allows as much.
     */
    static final int MAX_NESTING = 1024;

    /** Input that cannot become a request; answered with a GenericError without {@code "id"}. */
    record InputError(String desc) {
    }

    private enum Mode { BETWEEN, STRUCTURE, BARE, BARE_STRING }

    private final int maxFrameBytes;
    private Mode mode = Mode.BETWEEN;
    private int depth;
    private int quote; // the open string's quote character; 0 outside strings
    private boolean escaped;
    private boolean discarding; // skipping the rest of an over-long message
    private int scanned; // bytes of the current message already examined, counted from readerIndex

    QmpJsonFramer(int maxFrameBytes) {
        if (maxFrameBytes < 2) {
            throw new IllegalArgumentException("maxFrameBytes too small: " + maxFrameBytes);
        }
        this.maxFrameBytes = maxFrameBytes;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        while (in.readableBytes() > scanned) {
            int b = in.getUnsignedByte(in.readerIndex() + scanned);
            if (isReset(b)) {
                boolean partial = mode != Mode.BETWEEN && !discarding;
                in.skipBytes(scanned + 1);
                restart();
                out.add(new InputError(String.format(partial
                        ? "JSON parse error, stray byte 0x%02X inside a message; message discarded"
                        : "JSON parse error, stray byte 0x%02X", b)));
                continue;
            }
            switch (mode) {
                case BETWEEN -> begin(b, in, out);
                case STRUCTURE -> {
                    scanned++;
                    if (quote != 0) {
                        stringStep(b);
                    } else if (b == '"' || b == '\'') {
                        quote = b;
                    } else if (b == '{' || b == '[') {
                        if (++depth > MAX_NESTING && !discarding) {
                            discarding = true; // the rest of the message is skipped as it arrives
                            out.add(new InputError("JSON nesting depth limit exceeded"));
                        }
                    } else if ((b == '}' || b == ']') && --depth == 0) {
                        complete(in, out, scanned);
                    }
                }
                case BARE_STRING -> {
                    scanned++;
                    stringStep(b);
                    if (quote == 0) {
                        complete(in, out, scanned);
                    }
                }
                case BARE -> {
                    if (isWhitespace(b) || isStructural(b) || b == '"' || b == '\'') {
                        complete(in, out, scanned); // b belongs to what follows
                    } else {
                        scanned++;
                    }
                }
            }
            enforceLimit(in, out);
        }
    }

    private void begin(int b, ByteBuf in, List<Object> out) {
        if (isWhitespace(b)) {
            in.skipBytes(1);
        } else if (b == '{' || b == '[') {
            mode = Mode.STRUCTURE;
            depth = 1;
            scanned = 1;
        } else if (b == '"' || b == '\'') {
            mode = Mode.BARE_STRING;
            quote = b;
            scanned = 1;
        } else if (isStructural(b)) {
            out.add(in.readRetainedSlice(1));
        } else {
            mode = Mode.BARE;
            scanned = 1;
        }
    }

    /** Byte {@code b} inside a string: tracks escapes; the matching unescaped quote closes it. */
    private void stringStep(int b) {
        if (escaped) {
            escaped = false;
        } else if (b == '\\') {
            escaped = true;
        } else if (b == quote) {
            quote = 0;
        }
    }

    private void complete(ByteBuf in, List<Object> out, int length) {
        if (discarding) {
            in.skipBytes(length);
        } else {
            out.add(in.readRetainedSlice(length));
        }
        restart();
    }

    private void enforceLimit(ByteBuf in, List<Object> out) {
        if (mode == Mode.BETWEEN) {
            return;
        }
        if (!discarding && scanned > maxFrameBytes) {
            discarding = true;
            out.add(new InputError("JSON parse error, message longer than " + maxFrameBytes
                    + " bytes; message discarded"));
        }
        if (discarding) {
            in.skipBytes(scanned);
            scanned = 0;
        }
    }

    private void restart() {
        mode = Mode.BETWEEN;
        depth = 0;
        quote = 0;
        escaped = false;
        discarding = false;
        scanned = 0;
    }

    private static boolean isReset(int b) {
        return (b < 0x20 && !isWhitespace(b)) || b == 0xFE || b == 0xFF;
    }

    private static boolean isWhitespace(int b) {
        return b == ' ' || b == '\t' || b == '\r' || b == '\n';
    }

    private static boolean isStructural(int b) {
        return b == '{' || b == '}' || b == '[' || b == ']' || b == ',' || b == ':';
    }
}
