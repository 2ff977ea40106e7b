package dev.ferry.vmm.vfio;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vfio.check.CheckReport;

import java.io.UncheckedIOException;

/**
 * The machine form of a {@link CheckReport}: one JSON object.
 * <pre>
 * { "target", "device", "migration", "dmaLogging", "passed", "aborted", "elapsedNs",
 *   "options": { "repeat", "callTimeoutMs", "arcBudgetMs" },
 *   "rules": [ { "id", "statement", "status", "checks", "violations", "evidence": [..], "notes": [..] } ],
 *   "violations": [ "rule eof violated: ..." ],
 *   "arcs": [ { "from", "to", "runs", "minNs", "medianNs", "maxNs", "ns": [..] } ],
 *   "sizes": { "dataSizeRunning", "stopCopyEstimate", "stopCopyBytes", "precopyInitialBytes", "precopyBytes",
 *              "precopyMaxDirtyBytes", "precopyStopCopyEstimate", "precopyStopCopyBytes" } }
 * </pre>
 * Status values are the enum names (PASS, FAIL, NOT_APPLICABLE, NOT_EXERCISED); sizes not
 * measured are null.
 */
final class CheckReportJson {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private CheckReportJson() {
    }

    static ObjectNode tree(CheckReport r) {
        ObjectNode o = JSON.createObjectNode();
        o.put("target", r.target());
        o.put("device", r.device());
        o.put("migration", r.migration());
        o.put("dmaLogging", r.dmaLogging());
        o.put("passed", r.passed());
        o.put("aborted", r.aborted());
        o.put("elapsedNs", r.elapsedNanos());
        ObjectNode opts = o.putObject("options");
        opts.put("repeat", r.options().repeat());
        opts.put("callTimeoutMs", r.options().callTimeout().toMillis());
        opts.put("arcBudgetMs", r.options().arcBudget().toMillis());
        ArrayNode rules = o.putArray("rules");
        for (CheckReport.RuleResult rule : r.rules()) {
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
        ArrayNode arcs = o.putArray("arcs");
        for (CheckReport.ArcTiming t : r.arcs()) {
            ObjectNode a = arcs.addObject();
            a.put("from", t.arc().from().name());
            a.put("to", t.arc().to().name());
            a.put("runs", t.nanos().size());
            a.put("minNs", t.min());
            a.put("medianNs", t.median());
            a.put("maxNs", t.max());
            ArrayNode ns = a.putArray("ns");
            t.nanos().forEach(ns::add);
        }
        ObjectNode sizes = o.putObject("sizes");
        CheckReport.Sizes s = r.sizes();
        size(sizes, "dataSizeRunning", s.dataSizeRunning());
        size(sizes, "stopCopyEstimate", s.stopCopyEstimate());
        size(sizes, "stopCopyBytes", s.stopCopyBytes());
        size(sizes, "precopyInitialBytes", s.precopyInitialBytes());
        size(sizes, "precopyBytes", s.precopyBytes());
        size(sizes, "precopyMaxDirtyBytes", s.precopyMaxDirtyBytes());
        size(sizes, "precopyStopCopyEstimate", s.precopyStopCopyEstimate());
        size(sizes, "precopyStopCopyBytes", s.precopyStopCopyBytes());
        return o;
    }

    static String toJson(CheckReport r) {
        try {
            return JSON.writeValueAsString(tree(r));
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void size(ObjectNode o, String name, long v) {
        if (v < 0) {
            o.putNull(name);
        } else {
            o.put(name, v);
        }
    }
}
