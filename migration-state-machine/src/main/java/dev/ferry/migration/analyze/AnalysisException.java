package dev.ferry.migration.analyze;

/**
 * Why a stream file could not be analyzed. The message is one line that names the problem and,
 * where it makes sense, the file offset; it is what {@code ferry analyze} prints after the file
 * name. The analyzer never returns a partial result: the first problem ends the analysis.
 */
public final class AnalysisException extends Exception {
    private static final long serialVersionUID = 1L;

    /** What kind of problem it is, for callers that react differently (exit codes, tests). */
    public enum Kind {
        /** The file does not start with a QEVM header. */
        NOT_A_STREAM,
        /** The file ends before the structure it started is complete. */
        TRUNCATED,
        /** The bytes contradict the format (bad footer, unknown section type, impossible length...). */
        MALFORMED,
        /** Valid QEMU features the analyzer cannot follow (XBZRLE pages, an opaque iterable section...). */
        UNSUPPORTED
    }

    private final Kind kind;
    private final long offset;

    AnalysisException(Kind kind, long offset, String message) {
        super(message);
        this.kind = kind;
        this.offset = offset;
    }

    static AnalysisException malformed(long offset, String message) {
        return new AnalysisException(Kind.MALFORMED, offset, message);
    }

    static AnalysisException unsupported(long offset, String message) {
        return new AnalysisException(Kind.UNSUPPORTED, offset, message);
    }

    static AnalysisException truncated(long offset, String what, long fileSize) {
        return new AnalysisException(Kind.TRUNCATED, offset,
                "truncated at offset " + offset + " while reading " + what + " (the file ends at offset " + fileSize + ")");
    }

    public Kind kind() {
        return kind;
    }

    /** The file offset the problem was found at (the start of the item being read). */
    public long offset() {
        return offset;
    }
}
