package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.run.QapiJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The reduced fault matrix CI runs: one cell per fault kind, each a real pair of VMM processes
 * with every device kind, each ending with the source whole. The full matrix is
 * {@code ferry faults}.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class FaultsCommandTest {
    @Test
    void theReducedMatrixHasOneCellPerFaultAndTheFullOneEveryPhase() {
        List<FaultsCommand.Cell> reduced = FaultsCommand.matrix(true);
        assertEquals(List.of("cancel", "kill-destination", "network-drop", "network-stall", "vf-fails",
                "destination-refuses"), reduced.stream().map(FaultsCommand.Cell::fault).toList());
        List<FaultsCommand.Cell> full = FaultsCommand.matrix(false);
        for (String f : List.of("cancel", "kill-destination", "network-drop", "network-stall")) {
            assertEquals(List.of("setup", "active", "device"), full.stream().filter(c -> c.fault().equals(f))
                    .map(FaultsCommand.Cell::phase).toList(), f);
        }
    }

    @Test
    void everyReducedCellLeavesTheSourceWhole() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int exit;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            exit = new CommandLine(new FaultsCommand()).execute("--reduced", "--json");
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        JsonNode report = QapiJson.JSON.readTree(out);
        assertEquals(6, report.path("cells-run").asInt(), out);
        for (JsonNode c : report.path("cells")) {
            assertTrue(c.path("passed").asBoolean(), c.toString());
            assertEquals("running", c.path("source-state").asText(), c.toString());
            assertTrue(c.path("fds-after").asLong() <= c.path("fds-before").asLong(), c.toString());
            assertTrue(!c.path("reason").asText().isEmpty(), "a failure says why: " + c);
        }
        assertEquals(0, exit, out);
    }
}
