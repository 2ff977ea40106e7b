package dev.ferry.migration.analyze;

/**
 * A run of consecutive pages of one RAM block that ended the stream in the same state: the last
 * record for each was a ZERO record, or a PAGE record, or the stream never sent the page.
 *
 * @param firstPage page number within the block (byte offset = firstPage × page size)
 * @param pages     length of the run in pages
 */
public record PageRun(long firstPage, long pages, Kind kind) {
    public enum Kind {
        ZERO("zero"), NORMAL("normal"), NOT_SENT("not sent");

        private final String label;

        Kind(String label) {
            this.label = label;
        }

        public String label() {
            return label;
        }
    }
}
