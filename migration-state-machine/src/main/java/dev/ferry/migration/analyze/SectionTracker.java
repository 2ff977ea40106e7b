package dev.ferry.migration.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.migration.stream.Qevm;

/**
 * A section while {@link StreamAnalyzer} walks the stream: its header, its vmdesc entry (devices
 * only, else null) and how often each header type carried it. The walk's thread only.
 */
final class SectionTracker {
    final long id;
    final String idstr;
    final long instance;
    final long version;
    final SectionSummary.Kind kind;
    final long firstOffset;
    final JsonNode desc;
    int starts;
    int parts;
    int ends;
    int fulls;
    long bytes;

    SectionTracker(long id, String idstr, long instance, long version, SectionSummary.Kind kind, long firstOffset,
                   JsonNode desc) {
        this.id = id;
        this.idstr = idstr;
        this.instance = instance;
        this.version = version;
        this.kind = kind;
        this.firstOffset = firstOffset;
        this.desc = desc;
    }

    void count(int type) {
        switch (type) {
            case Qevm.SECTION_START -> starts++;
            case Qevm.SECTION_PART -> parts++;
            case Qevm.SECTION_END -> ends++;
            default -> fulls++;
        }
    }

    SectionSummary summary() {
        return new SectionSummary(id, idstr, instance, version, kind, starts, parts, ends, fulls, bytes, firstOffset);
    }
}
