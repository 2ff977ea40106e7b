package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.testing.CProbe;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The C algorithm and its Java mirror in lockstep, without KVM. It compiles
 * {@code src/main/guest/host_harness.c} (which includes {@code ferry_guest.h}, the code the guest
 * runs) for the host and runs it. It runs {@link GuestMirror} on the same parameters, and
 * compares the states and a digest of all memory the two wrote. The C side is compiled with the
 * guest's integer-only flags, so both sides do the same arithmetic.
 */
class GuestLockstepTest {
    private static final Path GUEST_SRC = Path.of("src/main/guest");

    @ParameterizedTest(name = "seed {0}, {1} pages, max steps {3}, {4} + {5} steps")
    @CsvSource({
        "1, 1, 1, 0, 10, 5",
        "12648430, 64, 16, 0, 500, 300",
        "-3819410105351357762, 37, 7, 0, 2000, 1",
        "99, 300, 1, 700, 650, 200",
        "-1, 2, 3, 5, 5, 10",
    })
    void harnessAndMirrorAgree(long seed, long pages, long pph, long maxSteps, long stepsA, long stepsB)
            throws IOException {
        assumeHarness();
        Map<String, Long> c = CProbe.run("host_harness.c", Files.readString(GUEST_SRC.resolve("host_harness.c")),
                "-O2", "-mgeneral-regs-only", "-I", GUEST_SRC.toAbsolutePath().toString(),
                "-DSEED=" + seed + "ULL", "-DWS_PAGES=" + pages + "ULL", "-DPPH=" + pph + "ULL",
                "-DMAX_STEPS=" + maxSteps + "ULL", "-DSTEPS_A=" + stepsA + "ULL", "-DSTEPS_B=" + stepsB + "ULL");
        assertEquals(0L, c.get("params"));

        GuestParams params = new GuestParams(seed, GuestLayout.WORKING_SET_MIN_GPA, pages, pph, maxSteps);
        try (GuestMemory memory = GuestMemory.ofSize(params.workingSetEnd())) {
            params.write(memory);
            GuestMirror first = GuestMirror.boot(memory);
            assertEquals(c.get("boot1"), (long) first.bootStatus().code());
            first.run(stepsA);
            assertState(c, "a", first.progress());
            GuestMirror again = GuestMirror.boot(memory);
            assertEquals(c.get("boot2"), (long) again.bootStatus().code());
            again.run(stepsB);
            assertState(c, "b", again.progress());
            assertEquals(c.get("digest"), digest(memory, params.workingSetEnd()), "memory digest after the run");
            assertEquals(again.progress(), GuestProgress.read(memory));
            GuestCheck check = GuestVerifier.verifyFromBoot(memory);
            assertTrue(check.ok(), check.toString());
        }
    }

    @ParameterizedTest(name = "bad parameter {0} = {1} is fault {2}")
    @CsvSource({
        "WS_PAGES, 0, 0x82",
        "PPH, 0, 0x83",
    })
    void harnessFaultsLikeTheJavaChecks(String name, long value, String fault) throws IOException {
        assumeHarness();
        String ws = name.equals("WS_PAGES") ? String.valueOf(value) : "4";
        String pph = name.equals("PPH") ? String.valueOf(value) : "1";
        Map<String, Long> c = CProbe.run("host_harness.c", Files.readString(GUEST_SRC.resolve("host_harness.c")),
                "-I", GUEST_SRC.toAbsolutePath().toString(), "-DSEED=1ULL", "-DWS_PAGES=" + ws + "ULL",
                "-DPPH=" + pph + "ULL", "-DMAX_STEPS=0ULL", "-DSTEPS_A=1ULL", "-DSTEPS_B=1ULL");
        assertEquals((long) Integer.decode(fault), c.get("params"));
        assertTrue(GuestStatus.of(Integer.decode(fault)).isFault());
    }

    @Test
    void theSharedDescriptionIsTheSameTextInCAndJava() throws IOException {
        Path java = Path.of("src/main/java/dev/ferry/core/cpu/guest");
        assumeTrue(Files.exists(GUEST_SRC.resolve("ferry_guest.h")) && Files.exists(java), "run from vmm-core");
        String c = Files.readString(GUEST_SRC.resolve("ferry_guest.h"));
        assertEquals(block(c, " * ALGORITHM", " *\n * WHAT A VERIFIER"),
                block(Files.readString(java.resolve("GuestAlgorithm.java")), " * ALGORITHM", " * </pre>"),
                "ALGORITHM in ferry_guest.h and GuestAlgorithm's Javadoc");
        assertEquals(block(c, " *   R1", " *\n * MORE THAN"),
                block(Files.readString(java.resolve("GuestVerifier.java")), " *   R1", " * </pre>\n * So both"),
                "R1-R3 in ferry_guest.h and GuestVerifier's Javadoc");
    }

    /** The comment lines from {@code from} up to {@code to}, without the comment margin and HTML escapes. */
    private static String block(String source, String from, String to) {
        int start = source.indexOf(from);
        int end = source.indexOf(to, start);
        assertTrue(start >= 0 && end > start, "no block '" + from.trim() + "'");
        StringBuilder out = new StringBuilder();
        for (String line : source.substring(start, end).split("\n")) {
            out.append(line.replaceFirst("^ \\* ?", "").replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&"))
                    .append('\n');
        }
        return out.toString().strip();
    }

    private static void assumeHarness() {
        assumeTrue(CProbe.gccAvailable(), CProbe.NO_GCC);
        assumeTrue(Files.exists(GUEST_SRC.resolve("host_harness.c")),
                "run from vmm-core: no " + GUEST_SRC.toAbsolutePath());
    }

    private static void assertState(Map<String, Long> c, String prefix, GuestProgress java) {
        assertEquals(c.get(prefix + ".counter"), java.counter(), prefix + ".counter");
        assertEquals(c.get(prefix + ".rng"), java.rng(), prefix + ".rng");
        assertEquals(c.get(prefix + ".hash"), java.hash(), prefix + ".hash");
        assertEquals(c.get(prefix + ".last"), java.lastPageGpa(), prefix + ".last");
    }

    /** The harness's digest: {@code d = mix(d ^ w)} over every long of {@code [0, end)}. */
    private static long digest(GuestMemory memory, long end) {
        long d = 0;
        for (long a = 0; a < end; a += 8) {
            d = GuestAlgorithm.mix(d ^ memory.readLong(Gpa.of(a)));
        }
        return d;
    }
}
