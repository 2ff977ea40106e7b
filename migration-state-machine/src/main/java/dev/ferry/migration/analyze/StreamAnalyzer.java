package dev.ferry.migration.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.migration.stream.Qevm;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Reads a QEVM v3 stream file — Ferry's or QEMU's — from end to end and reports what it holds:
 * sections, RAM blocks with their zero and normal page counts, device states decoded with the
 * trailing vmdesc, and commands. The layout it walks (all integers big-endian):
 * <pre>
 * be32 "QEVM" | be32 3
 * [0x07 CONFIGURATION ...]                                      see {@link ConfigurationReader}
 * { 0x01 START | 0x04 FULL : be32 id | u8 len | idstr | be32 instance | be32 version | data | footer
 *   0x02 PART  | 0x03 END  : be32 id | data | footer
 *   0x08 COMMAND           : be16 cmd | be16 len | len bytes    see {@link CommandReader}
 *   footer                 : 0x7e | be32 id }
 * 0x00 EOF
 * 0x06 | be32 len | vmdesc JSON                                 see {@link VmDescription}
 * </pre>
 * Section data has no length, so each is read by what it is: "ram" by {@link RamSectionReader},
 * "block" by {@link BlockMigrationReader}, VFIO devices by {@link VfioSectionReader}, devices by {@link VmStateDecoder} with their vmdesc
 * entry. An iterable section of any other kind (dirty-bitmap, ...) cannot be crossed and ends
 * the analysis with an error naming it. A stream without vmdesc is still walked: each device
 * section is skipped to the first {@code 0x7e id} footer followed by a plausible section type,
 * and reported as not decoded.
 *
 * <p>The file is hostile input: it is streamed, never held in memory (page payloads are skipped,
 * not read into the heap); every length is checked against the bytes left; counts and sizes are
 * capped; the first problem ends the analysis with an {@link AnalysisException} that names it and
 * its offset. Not thread-safe; each call analyzes on the calling thread.
 */
public final class StreamAnalyzer {
    /** Default page size when the stream does not say (no vmdesc, no target-page-bits). */
    static final int DEFAULT_PAGE_SIZE = 4096;
    static final int MAX_SECTIONS = 65536;
    /** Device section appearances at most (FULL once per section; PART/END of described iterables repeat). */
    static final int MAX_DEVICE_STATES = 1 << 17;

    /**
     * @param maxRunsPerBlock with a value above 0, each RAM block's pages are also reported as
     *                        runs of their final state (zero / normal / not sent), at most this many
     */
    public record Options(int maxRunsPerBlock) {
        public static Options defaults() {
            return new Options(0);
        }

        public static Options withPageRuns() {
            return new Options(1 << 20);
        }
    }

    private final SeekableByteChannel channel;
    private final String name;
    private final Options options;
    private final StreamInput in;
    private final Map<Long, SectionTracker> sections = new LinkedHashMap<>();
    private final List<DeviceState> devices = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();
    private final VmStateDecoder decoder;
    private final CommandReader commands;
    private VmDescription vmdesc;
    private MachineConfiguration configuration;
    private int pageSize = DEFAULT_PAGE_SIZE;
    private RamSectionReader ram;
    private BlockMigrationReader block;
    private VfioSectionReader vfio;

    private StreamAnalyzer(SeekableByteChannel channel, String name, Options options) throws IOException {
        this.channel = channel;
        this.name = name;
        this.options = options;
        this.in = new StreamInput(channel, channel.size(), 0);
        this.decoder = new VmStateDecoder(in);
        this.commands = new CommandReader(in);
    }

    public static StreamAnalysis analyze(Path file) throws IOException, AnalysisException {
        return analyze(file, Options.defaults());
    }

    public static StreamAnalysis analyze(Path file, Options options) throws IOException, AnalysisException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            return analyze(ch, file.toString(), options);
        }
    }

    /** Analyzes the stream in {@code channel} from offset 0 to its size; does not close it. */
    public static StreamAnalysis analyze(SeekableByteChannel channel, String name, Options options)
            throws IOException, AnalysisException {
        return new StreamAnalyzer(channel, name, options).run();
    }

    /**
     * Only the header check and the vmdesc, without walking the sections (what
     * {@code ferry analyze --dump desc} needs; instant even for a file of many GiB).
     */
    public static Optional<VmDescription> description(Path file) throws IOException, AnalysisException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            StreamAnalyzer a = new StreamAnalyzer(ch, file.toString(), Options.defaults());
            a.header();
            return VmDescription.locate(ch, ch.size());
        }
    }

    private StreamAnalysis run() throws IOException, AnalysisException {
        header();
        vmdesc = VmDescription.locate(channel, in.size()).orElse(null);
        if (vmdesc != null) {
            pageSize = vmdesc.pageSize();
        }
        boolean first = true;
        while (true) {
            long at = in.offset();
            int type = in.u8("a section type");
            switch (type) {
                case Qevm.EOF -> {
                    afterEof(at);
                    return result(at);
                }
                case Qevm.CONFIGURATION -> configuration(at, first);
                case Qevm.SECTION_START, Qevm.SECTION_FULL -> startOrFull(at, type);
                case Qevm.SECTION_PART, Qevm.SECTION_END -> partOrEnd(at, type);
                case Qevm.COMMAND -> commands.read(at);
                case Qevm.SECTION_FOOTER -> throw AnalysisException.malformed(at, "a section footer at offset " + at
                        + " follows no section");
                case Qevm.VMDESCRIPTION -> throw AnalysisException.malformed(at, "VMDESCRIPTION at offset " + at
                        + " before EOF");
                default -> throw AnalysisException.malformed(at, "unknown section type 0x"
                        + VmStateDecoder.hex2(type) + " at offset " + at);
            }
            first = false;
        }
    }

    private void header() throws IOException, AnalysisException {
        long size = in.size();
        if (size < 4) {
            throw new AnalysisException(AnalysisException.Kind.NOT_A_STREAM, 0, "not a migration stream: "
                    + (size == 0 ? "the file is empty" : "the file is only " + size + " bytes"));
        }
        long magic = in.be32("the file magic");
        if (magic != Qevm.FILE_MAGIC) {
            throw new AnalysisException(AnalysisException.Kind.NOT_A_STREAM, 0,
                    String.format("not a migration stream: magic 0x%08x, expected QEVM", magic));
        }
        long version = in.be32("the stream version");
        if (version != Qevm.FILE_VERSION) {
            throw AnalysisException.unsupported(4, "QEVM version " + version + (version == 2 ? " (obsolete)" : "")
                    + " is not supported; expected " + Qevm.FILE_VERSION);
        }
    }

    private void configuration(long at, boolean first) throws IOException, AnalysisException {
        if (!first) {
            throw AnalysisException.malformed(at, "CONFIGURATION at offset " + at + " does not follow the header");
        }
        configuration = ConfigurationReader.read(in);
        if (configuration.capabilities().contains("mapped-ram")) {
            throw AnalysisException.unsupported(at, "the stream uses mapped-ram (RAM at fixed file offsets), "
                    + "which the analyzer does not read");
        }
        if (configuration.targetPageBits() > 0) {
            int ps = 1 << configuration.targetPageBits();
            if (vmdesc != null && ps != pageSize) {
                throw AnalysisException.malformed(at, "configuration says pages of " + ps + " bytes, the vmdesc "
                        + pageSize);
            }
            pageSize = ps;
        }
    }

    private void startOrFull(long at, int type) throws IOException, AnalysisException {
        long id = in.be32("a section id");
        String idstr = in.countedString(1, "the idstr of section " + id);
        long instance = in.be32("the instance id of " + idstr);
        long version = in.be32("the version of " + idstr);
        SectionTracker used = sections.get(id);
        if (used != null && used.kind == SectionSummary.Kind.VFIO && type == Qevm.SECTION_FULL
                && used.idstr.equals(idstr) && used.instance == instance) {
            // QEMU saves a VFIO device's config as a FULL section under its live section's id
            body(used, type, at);
            return;
        }
        if (used != null) {
            throw AnalysisException.malformed(at, "section id " + id + " at offset " + at + " (" + idstr
                    + ") is already used by " + used.idstr);
        }
        if (sections.size() == MAX_SECTIONS) {
            throw AnalysisException.malformed(at, "more than " + MAX_SECTIONS + " sections");
        }
        String what = Qevm.sectionTypeName(type) + " " + idstr + " (section " + id + ", instance " + instance
                + ") at offset " + at;
        Optional<JsonNode> desc = vmdesc == null ? Optional.empty() : vmdesc.device(idstr, instance);
        SectionSummary.Kind kind;
        if (type == Qevm.SECTION_START && VfioSectionReader.isVfio(idstr)) {
            // Before the vmdesc: the entry under this name describes the device's config, which
            // comes later as a FULL section under the same id; the live data is read by its tags.
            kind = SectionSummary.Kind.VFIO;
            desc = Optional.empty();
        } else if (desc.isPresent()) {
            kind = SectionSummary.Kind.DEVICE;
        } else if (idstr.equals("ram") && instance == 0) {
            if (version != 4) {
                throw AnalysisException.unsupported(at, what + ": RAM section version " + version
                        + " (the analyzer reads version 4)");
            }
            kind = SectionSummary.Kind.RAM;
        } else if (idstr.equals("block") && instance == 0 && version == 1) {
            kind = SectionSummary.Kind.BLOCK;
        } else if (VfioSectionReader.isVfio(idstr)) {
            kind = SectionSummary.Kind.VFIO;
        } else if (type == Qevm.SECTION_FULL && vmdesc == null) {
            kind = SectionSummary.Kind.UNDESCRIBED;
        } else if (type == Qevm.SECTION_FULL) {
            throw AnalysisException.malformed(at, what + " has no entry in the vmdesc, so where it ends is unknown");
        } else {
            throw AnalysisException.unsupported(at, what + ": iterable section " + idstr + " cannot be parsed "
                    + "(its data has no length and its layout is private to its handler), so the rest of the "
                    + "stream cannot be read");
        }
        SectionTracker t = new SectionTracker(id, idstr, instance, version, kind, at, desc.orElse(null));
        sections.put(id, t);
        body(t, type, at);
    }

    private void partOrEnd(long at, int type) throws IOException, AnalysisException {
        long id = in.be32("a section id");
        SectionTracker t = sections.get(id);
        if (t == null) {
            throw AnalysisException.malformed(at, Qevm.sectionTypeName(type) + " at offset " + at + " for section id "
                    + id + ", which no START opened");
        }
        if (t.fulls > 0) {
            throw AnalysisException.malformed(at, Qevm.sectionTypeName(type) + " at offset " + at + " continues "
                    + t.idstr + " (section " + id + "), which was sent whole as SECTION_FULL");
        }
        body(t, type, at);
    }

    private void body(SectionTracker t, int type, long at) throws IOException, AnalysisException {
        long dataStart = in.offset();
        boolean footerRead = false;
        if ((t.kind == SectionSummary.Kind.DEVICE || t.kind == SectionSummary.Kind.UNDESCRIBED)
                && devices.size() == MAX_DEVICE_STATES) {
            throw AnalysisException.malformed(at, "more than " + MAX_DEVICE_STATES + " device sections");
        }
        switch (t.kind) {
            case RAM -> ram().readSection();
            case BLOCK -> block().readSection();
            case VFIO -> vfio().readSection(t.idstr, t.instance);
            case DEVICE -> {
                String label = t.idstr + (t.instance != 0 ? " (instance " + t.instance + ")" : "");
                FieldValue.Struct s = decoder.decode(t.desc, t.idstr, label);
                devices.add(device(t, type, at, in.offset() - dataStart, s, null));
            }
            case UNDESCRIBED -> {
                FooterScan.skipToFooter(in, t.id, t.idstr);
                footerRead = true;
                devices.add(device(t, type, at, in.offset() - 5 - dataStart, null,
                        "not decoded: the stream has no vmdesc; its size was found by scanning for its footer"));
            }
            default -> throw new IllegalStateException(t.kind.toString());
        }
        if (!footerRead) {
            footer(t);
        }
        t.count(type);
        t.bytes += in.offset() - at;
    }

    private DeviceState device(SectionTracker t, int type, long at, long bytes, FieldValue.Struct s, String note) {
        String vmsd = t.desc == null ? null : t.desc.path("vmsd_name").asText(null);
        String kind = Qevm.sectionTypeName(type).replace("SECTION_", "");
        return new DeviceState(t.idstr, t.instance, t.version, t.id, kind, at, bytes, vmsd, s, note);
    }

    private void footer(SectionTracker t) throws IOException, AnalysisException {
        long at = in.offset();
        int b = in.u8("the footer of " + t.idstr + " (section " + t.id + ")");
        if (b != Qevm.SECTION_FOOTER) {
            String hint = t.kind == SectionSummary.Kind.DEVICE
                    ? (b == Qevm.SUBSECTION ? "; a subsection the vmdesc does not list follows"
                    : "; the section holds more than its vmdesc entry describes") : "";
            throw AnalysisException.malformed(at, "missing footer of " + t.idstr + " (section " + t.id + ") at offset "
                    + at + ": found 0x" + VmStateDecoder.hex2(b) + hint);
        }
        long id = in.be32("the section id in the footer of " + t.idstr);
        if (id != t.id) {
            throw AnalysisException.malformed(at, "mismatched footer at offset " + at + ": section id " + id
                    + ", expected " + t.id + " (" + t.idstr + ")");
        }
    }

    private void afterEof(long eof) throws IOException, AnalysisException {
        long at = in.offset();
        if (vmdesc != null) {
            if (at != vmdesc.offset()) {
                throw AnalysisException.malformed(at, "EOF at offset " + eof + ", but the vmdesc starts at offset "
                        + vmdesc.offset());
            }
            long end = vmdesc.offset() + 5 + vmdesc.length();
            if (end < in.size()) {
                notes.add((in.size() - end) + " bytes after the vmdesc were ignored");
            }
            return;
        }
        if (in.atEnd()) {
            notes.add("the stream has no vmdesc: device states are not decoded");
            return;
        }
        int marker = in.u8("the byte after EOF");
        if (marker != Qevm.VMDESCRIPTION) {
            throw AnalysisException.malformed(at, "offset " + at + " after EOF holds 0x" + VmStateDecoder.hex2(marker)
                    + ", expected the VMDESCRIPTION marker 0x06 or the end of the file");
        }
        long len = in.be32("the vmdesc length");
        if (len > Qevm.MAX_VMDESC_LENGTH) {
            throw AnalysisException.malformed(at, "the vmdesc at offset " + at + " claims " + len + " bytes");
        }
        in.require(len, "the vmdesc JSON (" + len + " bytes)");
        byte[] json = new byte[(int) len];
        for (int done = 0; done < len; ) {
            int n = (int) Math.min(len - done, StreamInput.BUFFER_SIZE);
            System.arraycopy(in.bytes(n, "the vmdesc JSON"), 0, json, done, n);
            done += n;
        }
        vmdesc = VmDescription.parse(at, json);
        notes.add("the vmdesc at offset " + at + " is not where QEMU's analyze-migration.py looks for it (after the "
                + "last NUL byte of the file): device states were not decoded");
    }

    private StreamAnalysis result(long eof) {
        List<SectionSummary> list = new ArrayList<>();
        List<String> unended = new ArrayList<>();
        for (SectionTracker t : sections.values()) {
            list.add(t.summary());
            if (t.starts > 0 && t.ends == 0) {
                unended.add(t.idstr + " (section " + t.id + ")");
            }
        }
        if (!unended.isEmpty()) {
            notes.add("started but never ended: " + String.join(", ", unended.subList(0, Math.min(10, unended.size())))
                    + (unended.size() > 10 ? " and " + (unended.size() - 10) + " more" : ""));
        }
        notes.addAll(commands.notes());
        List<RamBlockSummary> blocks = ram == null ? List.of() : ram.summaries(options.maxRunsPerBlock());
        if (ram != null && !ram.tracked()) {
            notes.add("more than " + (RamSectionReader.TRACK_LIMIT >> 30) + " GiB of RAM: distinct pages and page "
                    + "runs are not tracked");
        }
        return new StreamAnalysis(name, in.size(), pageSize, configuration, List.copyOf(list), blocks,
                List.copyOf(devices), block == null ? List.of() : block.summaries(), vfio == null ? List.of() : vfio.summaries(), commands.counts(), vmdesc, eof,
                List.copyOf(notes));
    }

    private RamSectionReader ram() {
        if (ram == null) {
            boolean ignoreShared = configuration != null && configuration.capabilities().contains("x-ignore-shared");
            ram = new RamSectionReader(in, pageSize, ignoreShared);
        }
        return ram;
    }

    private VfioSectionReader vfio() {
        if (vfio == null) {
            vfio = new VfioSectionReader(in);
        }
        return vfio;
    }

    private BlockMigrationReader block() {
        if (block == null) {
            block = new BlockMigrationReader(in);
        }
        return block;
    }
}
