package dev.ferry.migration.fuzz;

import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.StreamBytes;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes the seed corpora of this module's fuzz targets: streams the real engine wrote and a
 * hand-written one, for a VM like the targets' destination. Run from the module directory after a
 * format change: {@code java -cp <test class path> dev.ferry.migration.fuzz.FuzzSeeds src/test/resources}
 * (docs/fuzzing.md).
 */
public final class FuzzSeeds {
    private FuzzSeeds() {
    }

    public static void main(String[] args) throws Exception {
        Path resources = Path.of(args.length > 0 ? args[0] : "src/test/resources");
        Path base = resources.resolve("dev/ferry/migration/fuzz");
        byte[] engine = engineStream();
        byte[] hand = handWritten();
        for (String target : new String[] {"StreamLoadFuzzTestInputs/destinationLoads",
                "StreamAnalyzerFuzzTestInputs/analyzerReads"}) {
            Path dir = base.resolve(target);
            Files.createDirectories(dir);
            Files.write(dir.resolve("engine-stream"), engine);
            Files.write(dir.resolve("hand-written-stream"), hand);
        }
    }

    static byte[] pattern() {
        byte[] p = new byte[StreamBytes.PAGE];
        for (int i = 0; i < p.length; i++) {
            p[i] = (byte) (i * 7 + 3);
        }
        return p;
    }

    /** A stream the real source wrote: RAM with a few pages of data and the test device. */
    static byte[] engineStream() throws Exception {
        try (TestVm vm = TestVm.builder("src").ram(StreamLoadFuzzTest.RAM_BYTES).running().device(TestDevice.sample())
                .build()) {
            vm.writePage(1, pattern());
            vm.writePage(7, pattern());
            return InMemoryMigration.save(vm.machine());
        }
    }

    /** Every record kind once: RAM setup, a PART of zero and data pages, an END, the device, EOF, vmdesc. */
    static byte[] handWritten() {
        return new StreamBytes().header().configuration("ferry")
                .start(1, "ram", 0, 4).memSize(StreamLoadFuzzTest.RAM_BYTES)
                .block("pc.ram", StreamLoadFuzzTest.RAM_BYTES).ramEos().footer(1)
                .part(1).zeroPage(0, "pc.ram").pageContinue(0x1000, pattern()).zeroPageContinue(0x2000).ramEos().footer(1)
                .end(1).ramEos().footer(1)
                .full(0, "test-dev", 0, 1).testDeviceState(TestDevice.sample()).footer(0)
                .eof().vmdesc("{\"page_size\": 4096, \"devices\": []}").toByteArray();
    }
}
