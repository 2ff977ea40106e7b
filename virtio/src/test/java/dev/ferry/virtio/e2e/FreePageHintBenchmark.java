package dev.ferry.virtio.e2e;

/**
 * Free page hinting measured, not a unit test: a soft guest with {@code ram} of RAM wrote a
 * {@code free} region and freed it, then migrates through the real engine at {@code bandwidth}
 * bytes/s, with hinting off and on, {@code rounds} times each. Prints a table of bytes on the
 * wire, pages sent and total time.
 * <pre>
 *   mvn -pl virtio test-compile exec:java -Dexec.classpathScope=test \
 *       -Dexec.mainClass=dev.ferry.virtio.e2e.FreePageHintBenchmark -Dexec.args="1024 512 1024 3"
 * </pre>
 * Arguments: RAM MiB, freed MiB, bandwidth MiB/s (0 = unlimited), rounds.
 */
public final class FreePageHintBenchmark {
    private FreePageHintBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        long mib = SoftBalloonVm.MiB;
        long ram = (args.length > 0 ? Long.parseLong(args[0]) : 1024) * mib;
        long free = (args.length > 1 ? Long.parseLong(args[1]) : 512) * mib;
        long bw = (args.length > 2 ? Long.parseLong(args[2]) : 1024) * mib;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 3;
        System.out.printf("RAM %d MiB, freed %d MiB, max-bandwidth %s%n", ram / mib, free / mib,
                bw == 0 ? "unlimited" : bw / mib + " MiB/s");
        System.out.println(HintMeasurement.header());
        for (int i = 0; i < rounds; i++) {
            for (boolean hint : new boolean[] {false, true}) {
                HintMeasurement m = HintMeasurement.run(hint, ram, free, bw);
                System.out.println(m.row() + (m.problems().isEmpty() ? "" : " RAM PROBLEMS: " + m.problems()));
            }
        }
    }
}
