package dev.ferry.migration.analyze;

import java.io.PrintWriter;
import java.util.List;
import java.util.Map;

/**
 * A {@link StreamAnalysis} as text for people: {@link #state} is the default report of
 * {@code ferry analyze} (stream, sections, RAM blocks and totals, device states), {@link #ram}
 * the per-block page summary with runs of zero, normal and unsent pages ({@code --dump ram}).
 * Unsigned integers print in hex padded to their size, signed ones in decimal, raw bytes as hex
 * (the first 32, then the size).
 */
public final class AnalysisReport {
    private static final int BYTES_SHOWN = 32;
    private static final int VALUES_PER_LINE = 8;

    private AnalysisReport() {
    }

    public static void state(StreamAnalysis a, PrintWriter out) {
        out.printf("file           %s (%d bytes)%n", a.file(), a.fileSize());
        out.printf("configuration  %s%n", a.configuration() == null ? "(none)"
                : a.configuration().machineType() + capabilities(a.configuration()));
        out.printf("page size      %d%n", a.pageSize());
        out.printf("vmdesc         %s%n", a.vmdesc() == null ? "(none: device states cannot be decoded)"
                : a.vmdesc().deviceCount() + " devices, " + a.vmdesc().length() + " bytes at offset " + a.vmdesc().offset());
        out.printf("EOF            at offset %d%n", a.eofOffset());

        out.printf("%nsections%n");
        out.printf("  %5s  %-32s %8s %7s %6s %6s %6s %6s %12s%n", "id", "idstr", "instance", "version", "start", "part",
                "end", "full", "bytes");
        for (SectionSummary s : a.sections()) {
            out.printf("  %5d  %-32s %8d %7d %6d %6d %6d %6d %12d%n", s.sectionId(), s.idstr(), s.instanceId(),
                    s.version(), s.starts(), s.parts(), s.ends(), s.fulls(), s.bytes());
        }
        blocks(a, out, false);
        out.printf("%ntotals         RAM %d bytes (%s); zero pages %d (query-migrate \"duplicate\"); normal pages %d"
                + " (query-migrate \"normal\")%n", a.ramTotalBytes(), human(a.ramTotalBytes()), a.zeroPages(),
                a.normalPages());
        if (!a.vfioDevices().isEmpty()) {
            out.printf("%nVFIO devices%n");
            for (VfioDeviceSummary v : a.vfioDevices()) {
                out.printf("  %-32s %d data blocks, %d bytes of device state, config %d bytes%s%n", v.idstr(),
                        v.dataBlocks(), v.dataBytes(), v.configBytes(), v.initDataSent() ? ", initial data sent" : "");
            }
        }
        if (!a.disks().isEmpty()) {
            out.printf("%ndisks (block migration)%n");
            for (DiskSummary d : a.disks()) {
                out.printf("  %-32s %d blocks of 1 MiB, %d zero blocks%n", d.name(), d.blocks(), d.zeroBlocks());
            }
        }
        if (!a.commands().isEmpty()) {
            StringBuilder sb = new StringBuilder();
            a.commands().entrySet().stream().sorted(Map.Entry.comparingByKey())
                    .forEach(e -> sb.append(sb.length() == 0 ? "" : ", ").append(e.getKey()).append(" x").append(e.getValue()));
            out.printf("commands       %s%n", sb);
        }
        out.printf("%ndevices%n");
        for (DeviceState d : a.devices()) {
            out.printf("  %s (instance %d, section %d, %s, %sv%d, %d bytes at offset %d)%n", d.idstr(), d.instanceId(),
                    d.sectionId(), d.sectionType(), d.vmsdName() == null ? "" : "vmsd " + d.vmsdName() + " ",
                    d.version(), d.bytes(), d.offset());
            if (d.state() != null) {
                struct(d.state(), "    ", out);
            } else {
                out.printf("    (%s)%n", d.note());
            }
        }
        notes(a, out);
        out.flush();
    }

    public static void ram(StreamAnalysis a, PrintWriter out) {
        out.printf("file           %s (%d bytes)%n", a.file(), a.fileSize());
        out.printf("page size      %d%n", a.pageSize());
        blocks(a, out, true);
        out.printf("%ntotals         RAM %d bytes (%s); zero pages %d; normal pages %d; distinct pages %s%n",
                a.ramTotalBytes(), human(a.ramTotalBytes()), a.zeroPages(), a.normalPages(),
                a.distinctPages() < 0 ? "not tracked" : Long.toString(a.distinctPages()));
        notes(a, out);
        out.flush();
    }

    private static void blocks(StreamAnalysis a, PrintWriter out, boolean runs) {
        out.printf("%nRAM blocks%n");
        out.printf("  %-32s %16s %13s %13s %15s%n", "name", "size (bytes)", "zero pages", "normal pages",
                "distinct pages");
        for (RamBlockSummary b : a.ramBlocks()) {
            out.printf("  %-32s %16d %13d %13d %15s%n", b.name(), b.length(), b.zeroPages(), b.normalPages(),
                    b.distinctPages() < 0 ? "-" : Long.toString(b.distinctPages()));
            if (runs) {
                for (PageRun r : b.runs()) {
                    long start = r.firstPage() * a.pageSize();
                    long end = Math.min(start + r.pages() * a.pageSize(), b.length()) - 1;
                    out.printf("      0x%012x-0x%012x %10d pages  %s%n", start, end, r.pages(), r.kind().label());
                }
                if (b.runsCut()) {
                    out.printf("      ... (more runs not shown)%n");
                }
            }
        }
        out.printf("  %-32s %16d %13d %13d %15s%n", "total", a.ramTotalBytes(), a.zeroPages(), a.normalPages(),
                a.distinctPages() < 0 ? "-" : Long.toString(a.distinctPages()));
    }

    private static void notes(StreamAnalysis a, PrintWriter out) {
        if (!a.notes().isEmpty()) {
            out.printf("%nnotes%n");
            a.notes().forEach(n -> out.printf("  - %s%n", n));
        }
    }

    private static String capabilities(MachineConfiguration c) {
        return c.capabilities().isEmpty() ? "" : " (capabilities: " + String.join(", ", c.capabilities()) + ")";
    }

    private static void struct(FieldValue.Struct s, String indent, PrintWriter out) {
        for (FieldValue.Field f : s.fields()) {
            field(f.name(), f.value(), indent, out);
        }
        for (FieldValue.Subsection sub : s.subsections()) {
            out.printf("%ssubsection %s (version %d):%n", indent, sub.name(), sub.version());
            struct(sub.state(), indent + "  ", out);
        }
    }

    private static void field(String name, FieldValue v, String indent, PrintWriter out) {
        if (v instanceof FieldValue.Struct s) {
            out.printf("%s%s:%n", indent, name);
            struct(s, indent + "  ", out);
        } else if (v instanceof FieldValue.Array arr) {
            List<FieldValue> el = arr.elements();
            if (el.stream().allMatch(AnalysisReport::scalar)) {
                if (el.size() <= VALUES_PER_LINE) {
                    out.printf("%s%s = [%s]%n", indent, name, join(el, 0, el.size()));
                } else {
                    out.printf("%s%s = [%d elements]%n", indent, name, el.size());
                    for (int i = 0; i < el.size(); i += VALUES_PER_LINE) {
                        out.printf("%s  [%d] %s%n", indent, i, join(el, i, Math.min(el.size(), i + VALUES_PER_LINE)));
                    }
                }
            } else {
                for (int i = 0; i < el.size(); i++) {
                    field(name + "[" + i + "]", el.get(i), indent, out);
                }
            }
        } else {
            out.printf("%s%s = %s%n", indent, name, scalarText(v));
        }
    }

    private static boolean scalar(FieldValue v) {
        return !(v instanceof FieldValue.Struct || v instanceof FieldValue.Array || v instanceof FieldValue.Bytes);
    }

    private static String join(List<FieldValue> el, int from, int to) {
        StringBuilder sb = new StringBuilder();
        for (int i = from; i < to; i++) {
            sb.append(i > from ? ", " : "").append(scalarText(el.get(i)));
        }
        return sb.toString();
    }

    private static String scalarText(FieldValue v) {
        return v instanceof FieldValue.Bytes b ? b.hex(BYTES_SHOWN) : v.toString();
    }

    /** Bytes in the largest binary unit that keeps a value of at least 1. */
    static String human(long bytes) {
        String[] units = {"bytes", "KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return u == 0 ? bytes + " bytes" : String.format(java.util.Locale.ROOT, "%.1f %s", v, units[u]);
    }
}
