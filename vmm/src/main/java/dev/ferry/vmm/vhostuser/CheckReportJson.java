package dev.ferry.vmm.vhostuser;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vhostuser.check.VhostUserCheckReport;

import java.io.UncheckedIOException;

/**
 * The machine form of a {@link VhostUserCheckReport}: one JSON object.
 * <pre>
 * { "socket", "type", "features", "protocolFeatures", "passed", "aborted", "elapsedNs",
 *   "rules": [ { "id", "statement", "status", "checks", "violations", "evidence": [..], "notes": [..] } ],
 *   "violations": [ "rule dirty-log violated: ..." ],
 *   "traffic": { "requests", "bytes", "pagesWritten", "pagesLogged", "pagesMissing" } }
 * </pre>
 * Status values are the enum names (PASS, FAIL, SKIPPED); features not read are null.
 */
final class CheckReportJson {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private CheckReportJson() {
    }

    static ObjectNode tree(VhostUserCheckReport r) {
        ObjectNode o = JSON.createObjectNode();
        o.put("socket", r.socket());
        o.put("type", r.type());
        features(o, "features", r.features());
        features(o, "protocolFeatures", r.protocolFeatures());
        o.put("passed", r.passed());
        o.put("aborted", r.aborted());
        o.put("elapsedNs", r.elapsedNanos());
        ArrayNode rules = o.putArray("rules");
        for (VhostUserCheckReport.RuleResult rule : r.rules()) {
            ObjectNode n = rules.addObject();
            n.put("id", rule.rule().id());
            n.put("statement", rule.rule().statement());
            n.put("status", rule.status().name());
            n.put("checks", rule.checks());
            n.put("violations", rule.violations());
            ArrayNode ev = n.putArray("evidence");
            rule.evidence().forEach(ev::add);
            ArrayNode notes = n.putArray("notes");
            rule.notes().forEach(notes::add);
        }
        ArrayNode violations = o.putArray("violations");
        r.violationLines().forEach(violations::add);
        ObjectNode t = o.putObject("traffic");
        t.put("requests", r.traffic().requests());
        t.put("bytes", r.traffic().bytes());
        t.put("pagesWritten", r.traffic().pagesWritten());
        t.put("pagesLogged", r.traffic().pagesLogged());
        t.put("pagesMissing", r.traffic().pagesMissing());
        return o;
    }

    static String toJson(VhostUserCheckReport r) {
        try {
            return JSON.writeValueAsString(tree(r));
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void features(ObjectNode o, String name, long v) {
        if (v < 0) {
            o.putNull(name);
        } else {
            o.put(name, "0x" + Long.toHexString(v));
        }
    }
}
