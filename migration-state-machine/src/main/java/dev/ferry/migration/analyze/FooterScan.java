package dev.ferry.migration.analyze;

import dev.ferry.migration.stream.Qevm;

import java.io.IOException;

/**
 * Crosses a device section whose layout is unknown (the stream has no vmdesc) by searching for
 * its footer: the first {@code 0x7e | be32 section_id} followed by the end of the file or a byte
 * that can start the next top-level item (EOF, START, PART, END, FULL, COMMAND). The search is a
 * heuristic — device data may contain the same five bytes — so what it finds is reported as not
 * decoded, and a wrong guess shows up as an error at the next section. It reads each byte once,
 * so it ends at the end of the file at the latest.
 */
final class FooterScan {
    private static final long WINDOW_MASK = 0xff_ffff_ffffL;

    private FooterScan() {
    }

    /** Leaves the input just after the footer. */
    static void skipToFooter(StreamInput in, long sectionId, String idstr) throws IOException, AnalysisException {
        long target = ((long) Qevm.SECTION_FOOTER << 32) | sectionId;
        long window = 0;
        int seen = 0;
        String what = "the footer of " + idstr + " (section " + sectionId + "), searched for because the stream has "
                + "no vmdesc";
        while (true) {
            window = ((window << 8) | in.u8(what)) & WINDOW_MASK;
            if (++seen >= 5 && window == target && (in.atEnd() || startsItem(in.peekU8(what)))) {
                return;
            }
        }
    }

    private static boolean startsItem(int b) {
        return switch (b) {
            case Qevm.EOF, Qevm.SECTION_START, Qevm.SECTION_PART, Qevm.SECTION_END, Qevm.SECTION_FULL, Qevm.COMMAND -> true;
            default -> false;
        };
    }
}
