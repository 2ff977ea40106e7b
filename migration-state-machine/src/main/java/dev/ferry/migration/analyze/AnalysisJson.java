package dev.ferry.migration.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.math.BigInteger;
import java.util.HexFormat;

/**
 * A {@link StreamAnalysis} as one JSON object, for {@code ferry analyze --json}. Names follow
 * QEMU's {@code query-migrate} where they mean the same ("total", "duplicate", "normal"). Field
 * values: integers as numbers (unsigned 64-bit ones above 2^63 too), bools, doubles, strings for
 * text; named bits (a virtio status or feature word) as {"value": n, "flags": [set bits' names]};
 * raw bytes as a hex string, or {"size", "prefix"} when only a prefix was kept; arrays as arrays;
 * structs as objects of their fields, followed by their subsections under the subsection's name
 * (as QEMU's analyze-migration.py nests them).
 */
public final class AnalysisJson {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    private AnalysisJson() {
    }

    /** Everything: stream, sections, RAM, devices, notes. */
    public static ObjectNode state(StreamAnalysis a) {
        ObjectNode o = F.objectNode();
        o.put("file", a.file());
        o.put("size", a.fileSize());
        o.put("page_size", a.pageSize());
        if (a.configuration() != null) {
            ObjectNode c = o.putObject("configuration");
            c.put("machine_type", a.configuration().machineType());
            ArrayNode caps = c.putArray("capabilities");
            a.configuration().capabilities().forEach(caps::add);
            if (a.configuration().targetPageBits() > 0) {
                c.put("target_page_bits", a.configuration().targetPageBits());
            }
            if (a.configuration().uuid() != null) {
                c.put("uuid", a.configuration().uuid());
            }
        } else {
            o.putNull("configuration");
        }
        if (a.vmdesc() != null) {
            ObjectNode v = o.putObject("vmdesc");
            v.put("offset", a.vmdesc().offset());
            v.put("length", a.vmdesc().length());
            v.put("devices", a.vmdesc().deviceCount());
        } else {
            o.putNull("vmdesc");
        }
        o.put("eof_offset", a.eofOffset());
        ArrayNode sections = o.putArray("sections");
        for (SectionSummary s : a.sections()) {
            ObjectNode n = sections.addObject();
            n.put("id", s.sectionId());
            n.put("idstr", s.idstr());
            n.put("instance_id", s.instanceId());
            n.put("version", s.version());
            n.put("kind", s.kind().name().toLowerCase(java.util.Locale.ROOT));
            n.put("start", s.starts());
            n.put("part", s.parts());
            n.put("end", s.ends());
            n.put("full", s.fulls());
            n.put("bytes", s.bytes());
            n.put("offset", s.firstOffset());
        }
        o.set("ram", ram(a, false));
        ArrayNode vfio = o.putArray("vfio_devices");
        for (VfioDeviceSummary v : a.vfioDevices()) {
            vfio.addObject().put("idstr", v.idstr()).put("instance_id", v.instanceId()).put("data_blocks", v.dataBlocks())
                    .put("data_bytes", v.dataBytes()).put("config_bytes", v.configBytes())
                    .put("init_data_sent", v.initDataSent());
        }
        ArrayNode disks = o.putArray("disks");
        for (DiskSummary d : a.disks()) {
            disks.addObject().put("name", d.name()).put("blocks", d.blocks()).put("zero_blocks", d.zeroBlocks());
        }
        ObjectNode cmds = o.putObject("commands");
        a.commands().entrySet().stream().sorted(java.util.Map.Entry.comparingByKey())
                .forEach(e -> cmds.put(e.getKey(), e.getValue()));
        ArrayNode devices = o.putArray("devices");
        for (DeviceState d : a.devices()) {
            ObjectNode n = devices.addObject();
            n.put("name", d.idstr());
            n.put("instance_id", d.instanceId());
            n.put("version", d.version());
            n.put("section_id", d.sectionId());
            n.put("section_type", d.sectionType());
            n.put("offset", d.offset());
            n.put("bytes", d.bytes());
            n.put("vmsd_name", d.vmsdName());
            n.set("state", d.state() == null ? F.nullNode() : value(d.state()));
            if (d.note() != null) {
                n.put("note", d.note());
            }
        }
        ArrayNode notes = o.putArray("notes");
        a.notes().forEach(notes::add);
        return o;
    }

    /** The RAM totals and blocks; with {@code runs}, each block's page runs too. */
    public static ObjectNode ram(StreamAnalysis a, boolean runs) {
        ObjectNode r = F.objectNode();
        r.put("page_size", a.pageSize());
        r.put("total", a.ramTotalBytes());
        r.put("duplicate", a.zeroPages());
        r.put("normal", a.normalPages());
        r.put("distinct", a.distinctPages());
        ArrayNode blocks = r.putArray("blocks");
        for (RamBlockSummary b : a.ramBlocks()) {
            ObjectNode n = blocks.addObject();
            n.put("name", b.name());
            n.put("length", b.length());
            n.put("zero_pages", b.zeroPages());
            n.put("normal_pages", b.normalPages());
            n.put("distinct_pages", b.distinctPages());
            if (runs) {
                ArrayNode rs = n.putArray("runs");
                for (PageRun p : b.runs()) {
                    rs.addObject().put("offset", "0x" + Long.toHexString(p.firstPage() * a.pageSize()))
                            .put("pages", p.pages()).put("kind", p.kind().label());
                }
                n.put("runs_cut", b.runsCut());
            }
        }
        return r;
    }

    /** One decoded value. */
    public static JsonNode value(FieldValue v) {
        if (v instanceof FieldValue.Unsigned u) {
            return u.value() >= 0 ? F.numberNode(u.value())
                    : F.numberNode(new BigInteger(Long.toUnsignedString(u.value())));
        } else if (v instanceof FieldValue.Flags f) {
            ObjectNode o = F.objectNode();
            o.set("value", value(new FieldValue.Unsigned(f.value(), f.size())));
            ArrayNode names = o.putArray("flags");
            f.names().forEach(names::add);
            return o;
        } else if (v instanceof FieldValue.Signed s) {
            return F.numberNode(s.value());
        } else if (v instanceof FieldValue.Bool b) {
            return F.booleanNode(b.value());
        } else if (v instanceof FieldValue.Float64 d) {
            return Double.isFinite(d.value()) ? F.numberNode(d.value()) : F.textNode(Double.toString(d.value()));
        } else if (v instanceof FieldValue.Text t) {
            return F.textNode(t.value());
        } else if (v instanceof FieldValue.Null) {
            return F.nullNode();
        } else if (v instanceof FieldValue.Bytes b) {
            String hex = HexFormat.of().formatHex(b.prefix());
            if (b.complete()) {
                return F.textNode(hex);
            }
            ObjectNode o = F.objectNode();
            o.put("size", b.size());
            o.put("prefix", hex);
            return o;
        } else if (v instanceof FieldValue.Array arr) {
            ArrayNode a = F.arrayNode();
            arr.elements().forEach(e -> a.add(value(e)));
            return a;
        } else {
            FieldValue.Struct s = (FieldValue.Struct) v;
            ObjectNode o = F.objectNode();
            for (FieldValue.Field f : s.fields()) {
                o.set(f.name(), value(f.value()));
            }
            for (FieldValue.Subsection sub : s.subsections()) {
                o.set(sub.name(), value(sub.state()));
            }
            return o;
        }
    }
}
