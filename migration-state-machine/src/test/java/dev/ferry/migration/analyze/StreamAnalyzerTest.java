package dev.ferry.migration.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.StreamBytes;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The analyzer on streams Ferry's engine writes: the real {@code SourceMigration} saves a small VM
 * into a file, and what the analyzer reads back must agree with what the engine reported
 * ({@code query-migrate}'s total, duplicate and normal) and with the device it saved.
 */
@Timeout(20)
class StreamAnalyzerTest {
    private static final int PAGE = 4096;

    @TempDir
    Path dir;

    private record Saved(Path file, byte[] stream, MigrationInfo info) {
    }

    /** Two RAM blocks, about a third of the pages random (the rest zero), the test device. */
    private Saved saveSmallVm(TestDevice device) throws Exception {
        InMemoryMigration.Saved saved;
        try (TestVm vm = TestVm.builder("src").region("pc.ram", 0, 256 << 10).region("pc.bios", 0xfffe0000L, 16 << 10)
                .running().device(device).build()) {
            vm.randomizePages(7, 0.3);
            saved = InMemoryMigration.saveWithInfo(vm.machine());
        }
        Path f = dir.resolve("ferry.qevm");
        Files.write(f, saved.stream());
        return new Saved(f, saved.stream(), saved.info());
    }

    @Test
    void ramTotalsAgreeWithTheEnginesQueryMigrateCounters() throws Exception {
        Saved s = saveSmallVm(TestDevice.sample());
        StreamAnalysis a = StreamAnalyzer.analyze(s.file());

        MigrationInfo.Ram ram = s.info().ram();
        assertEquals(ram.total(), a.ramTotalBytes());
        assertEquals(ram.duplicate(), a.zeroPages(), "zero pages = query-migrate duplicate");
        assertEquals(ram.normal(), a.normalPages(), "normal pages = query-migrate normal");
        assertTrue(a.normalPages() > 0 && a.zeroPages() > 0, a.toString());
        assertEquals(a.ramTotalBytes() / PAGE, a.distinctPages(), "every page was sent");

        assertEquals(List.of("pc.ram", "pc.bios"), a.ramBlocks().stream().map(RamBlockSummary::name).toList());
        assertEquals(List.of(256L << 10, 16L << 10), a.ramBlocks().stream().map(RamBlockSummary::length).toList());
        assertEquals(4096, a.pageSize());
        assertEquals("ferry", a.configuration().machineType());
        assertEquals(List.of(), a.notes());
    }

    @Test
    void sectionsAreListedWithTheirHeaderCountsAndFooters() throws Exception {
        Saved s = saveSmallVm(TestDevice.sample());
        StreamAnalysis a = StreamAnalyzer.analyze(s.file());

        assertEquals(3, a.sections().size(), a.sections().toString());
        assertEquals("globalstate", a.sections().get(2).idstr(), "the machine's run state, sent last");
        SectionSummary ram = a.sections().get(0);
        assertEquals("ram", ram.idstr());
        assertEquals(SectionSummary.Kind.RAM, ram.kind());
        assertEquals(4, ram.version());
        assertEquals(1, ram.starts());
        assertEquals(1, ram.ends());
        assertEquals(0, ram.fulls());
        SectionSummary dev = a.sections().get(1);
        assertEquals(TestDevice.IDSTR, dev.idstr());
        assertEquals(SectionSummary.Kind.DEVICE, dev.kind());
        assertEquals(1, dev.fulls());
        assertEquals(0, dev.starts() + dev.parts() + dev.ends());
        // Every byte between the header (and configuration) and EOF belongs to a section.
        long configuration = 1 + 4 + "ferry".length();
        long sectionBytes = a.sections().stream().mapToLong(SectionSummary::bytes).sum();
        assertEquals(a.eofOffset(), 8 + configuration + sectionBytes);
        assertEquals(a.eofOffset() + 1, a.vmdesc().offset());
    }

    @Test
    void deviceFieldsAndSubsectionDecodeToTheSavedValues() throws Exception {
        TestDevice d = TestDevice.sample();
        StreamAnalysis a = StreamAnalyzer.analyze(saveSmallVm(d).file());

        DeviceState dev = a.device(TestDevice.IDSTR, 0).orElseThrow();
        assertEquals("FULL", dev.sectionType());
        assertEquals(TestDevice.IDSTR, dev.vmsdName());
        assertNull(dev.note());
        FieldValue.Struct st = dev.state();
        assertEquals(new FieldValue.Unsigned(d.id(), 4), st.get("id"));
        assertEquals(new FieldValue.Unsigned(d.counter(), 8), st.get("counter"));
        assertArrayEquals(d.mac(), ((FieldValue.Bytes) st.get("mac")).prefix());
        assertEquals(new FieldValue.Bool(true), st.get("enabled"));
        FieldValue.Subsection extra = st.subsection(TestDevice.EXTRA);
        assertNotNull(extra, st.toString());
        assertEquals(1, extra.version());
        assertEquals(new FieldValue.Unsigned(0xbeef, 2), extra.state().get("extra"));
        assertEquals(4 + 8 + 6 + 1 + (1 + 1 + TestDevice.EXTRA.length() + 4 + 2), dev.bytes());
    }

    @Test
    void aDeviceWithoutItsSubsectionDecodesToo() throws Exception {
        StreamAnalysis a = StreamAnalyzer.analyze(saveSmallVm(TestDevice.sample().extra(0)).file());
        FieldValue.Struct st = a.device(TestDevice.IDSTR, 0).orElseThrow().state();
        assertEquals(List.of(), st.subsections());
        assertEquals(4, st.fields().size());
    }

    @Test
    void withoutItsVmdescTheStreamIsStillWalkedAndTheDeviceIsReportedUndecoded() throws Exception {
        Saved s = saveSmallVm(TestDevice.sample());
        StreamAnalysis full = StreamAnalyzer.analyze(s.file());
        int upToEof = (int) full.eofOffset() + 1;
        StreamAnalysis a = StreamAnalyzer.analyze(new ByteArrayChannel(s.stream(), upToEof), "cut",
                StreamAnalyzer.Options.defaults());

        assertNull(a.vmdesc());
        assertEquals(full.zeroPages(), a.zeroPages());
        assertEquals(full.normalPages(), a.normalPages());
        DeviceState dev = a.device(TestDevice.IDSTR, 0).orElseThrow();
        assertNull(dev.state());
        assertTrue(dev.note().contains("no vmdesc"), dev.note());
        assertEquals(full.device(TestDevice.IDSTR, 0).orElseThrow().bytes(), dev.bytes(), "footer scan found the end");
        assertEquals(SectionSummary.Kind.UNDESCRIBED, a.sections().get(1).kind());
        assertTrue(a.notes().stream().anyMatch(n -> n.contains("no vmdesc")), a.notes().toString());
    }

    @Test
    void aPageSentTwiceCountsTwiceAsQemuCountsItAndItsLastRecordDecidesItsRun() throws Exception {
        byte[] random = new byte[PAGE];
        Arrays.fill(random, (byte) 0x5a);
        String json = "{\"page_size\": 4096, \"devices\": []}";
        byte[] stream = new StreamBytes().header()
                .start(1, "ram", 0, 4).memSize(4 * PAGE).block("pc.ram", 4 * PAGE).ramEos().footer(1)
                .part(1).zeroPage(0, "pc.ram").zeroPageContinue(PAGE).pageContinue(2 * PAGE, random).ramEos().footer(1)
                .end(1).page(0, "pc.ram", random).zeroPageContinue(2 * PAGE)
                .be64(0x200).ramEos().footer(1) // a MULTIFD_FLUSH record is skipped
                .eof().vmdesc(json).toByteArray();
        StreamAnalysis a = StreamAnalyzer.analyze(new ByteArrayChannel(stream), "twice", StreamAnalyzer.Options.withPageRuns());

        RamBlockSummary b = a.ramBlocks().get(0);
        assertEquals(3, b.zeroPages());
        assertEquals(2, b.normalPages());
        assertEquals(3, b.distinctPages());
        assertEquals(List.of(new PageRun(0, 1, PageRun.Kind.NORMAL), new PageRun(1, 2, PageRun.Kind.ZERO),
                new PageRun(3, 1, PageRun.Kind.NOT_SENT)), b.runs());
        assertEquals(1, a.sections().get(0).parts());
    }

    @Test
    void reportsNameTheBlocksTotalsAndFields() throws Exception {
        Saved s = saveSmallVm(TestDevice.sample());
        StreamAnalysis a = StreamAnalyzer.analyze(s.file(), StreamAnalyzer.Options.withPageRuns());
        StringWriter text = new StringWriter();
        AnalysisReport.state(a, new PrintWriter(text));
        String t = text.toString();
        assertTrue(t.contains("configuration  ferry"), t);
        assertTrue(t.contains("zero pages " + a.zeroPages() + " (query-migrate \"duplicate\")"), t);
        assertTrue(t.contains("id = 0x12345678"), t);
        assertTrue(t.contains("mac = 52 54 00 12 34 56"), t);
        assertTrue(t.contains("subsection test-dev/extra (version 1):"), t);
        assertTrue(t.contains("extra = 0xbeef"), t);

        JsonNode j = AnalysisJson.state(a);
        assertEquals(a.ramTotalBytes(), j.get("ram").get("total").asLong());
        assertEquals(a.zeroPages(), j.get("ram").get("duplicate").asLong());
        assertEquals(a.normalPages(), j.get("ram").get("normal").asLong());
        JsonNode dev = j.get("devices").get(0);
        assertEquals(0x12345678L, dev.get("state").get("id").asLong());
        assertEquals("525400123456", dev.get("state").get("mac").asText());
        assertEquals(0xbeef, dev.get("state").get(TestDevice.EXTRA).get("extra").asInt());

        JsonNode ram = AnalysisJson.ram(a, true);
        long pages = 0;
        for (JsonNode block : ram.get("blocks")) {
            for (JsonNode run : block.get("runs")) {
                pages += run.get("pages").asLong();
            }
        }
        assertEquals(a.ramTotalBytes() / PAGE, pages, "runs cover every page once");
    }
}
