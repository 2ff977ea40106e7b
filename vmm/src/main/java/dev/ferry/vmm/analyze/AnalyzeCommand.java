package dev.ferry.vmm.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.ferry.migration.analyze.AnalysisException;
import dev.ferry.migration.analyze.AnalysisJson;
import dev.ferry.migration.analyze.AnalysisReport;
import dev.ferry.migration.analyze.StreamAnalysis;
import dev.ferry.migration.analyze.StreamAnalyzer;
import dev.ferry.migration.analyze.VmDescription;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * {@code ferry analyze FILE [--dump state|desc|ram] [--json]}: reads a migration stream saved to
 * a file — by Ferry's {@code file:} transport or by QEMU's {@code migrate "exec:cat > FILE"} — and
 * reports it (see {@link StreamAnalyzer}). Exit 0 with the report on stdout; exit 1 with one line
 * on stderr ({@code ferry analyze: FILE: problem}) when the file is not a stream, is malformed or
 * uses what the analyzer cannot follow.
 */
@Command(name = "analyze", mixinStandardHelpOptions = true,
        description = {"Report what a migration stream file (Ferry's or QEMU's QEVM v3) holds: its sections, "
                + "RAM blocks with zero and normal page counts, and device states decoded with its vmdesc.",
                "Zero and normal pages are counted as QEMU's query-migrate counts \"duplicate\" and \"normal\"."})
public final class AnalyzeCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** What to print. */
    public enum Dump { STATE, DESC, RAM }

    @Parameters(index = "0", paramLabel = "FILE", description = "the stream file")
    Path file;

    @Option(names = "--dump", paramLabel = "WHAT", defaultValue = "state", converter = DumpConverter.class,
            description = "state (default): stream, sections, RAM and device states; desc: the vmdesc JSON; "
                    + "ram: page counts per RAM block with runs of zero, normal and unsent pages")
    Dump dump = Dump.STATE;

    @Option(names = "--json", description = "print one JSON object instead of text")
    boolean json;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try {
            switch (dump) {
                case DESC -> {
                    Optional<VmDescription> d = StreamAnalyzer.description(file);
                    if (d.isEmpty()) {
                        return fail(err, "the stream has no vmdesc (VMDESCRIPTION after EOF)");
                    }
                    out.println(JSON.writeValueAsString(d.get().json()));
                }
                case RAM -> {
                    StreamAnalysis a = StreamAnalyzer.analyze(file, StreamAnalyzer.Options.withPageRuns());
                    if (json) {
                        print(out, AnalysisJson.ram(a, true));
                    } else {
                        AnalysisReport.ram(a, out);
                    }
                }
                default -> {
                    StreamAnalysis a = StreamAnalyzer.analyze(file);
                    if (json) {
                        print(out, AnalysisJson.state(a));
                    } else {
                        AnalysisReport.state(a, out);
                    }
                }
            }
            out.flush();
            return 0;
        } catch (AnalysisException e) {
            return fail(err, e.getMessage());
        } catch (NoSuchFileException e) {
            return fail(err, "no such file");
        } catch (AccessDeniedException e) {
            return fail(err, "permission denied");
        } catch (IOException e) {
            return fail(err, "cannot be read: " + e.getMessage());
        }
    }

    private int fail(PrintWriter err, String message) {
        err.println("ferry analyze: " + file + ": " + message);
        err.flush();
        return 1;
    }

    private static void print(PrintWriter out, JsonNode node) throws IOException {
        out.println(JSON.writeValueAsString(node));
    }

    /** {@code --dump} in any case, with a message that lists the choices. */
    static final class DumpConverter implements CommandLine.ITypeConverter<Dump> {
        @Override
        public Dump convert(String value) {
            try {
                return Dump.valueOf(value.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException("expected state, desc or ram, not '" + value + "'");
            }
        }
    }
}
