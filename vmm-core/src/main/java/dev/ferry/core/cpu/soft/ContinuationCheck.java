package dev.ferry.core.cpu.soft;

import java.util.List;

/**
 * The result of {@link SoftCpuEngine#verifyContinuation}: whether the destination's vCPUs took up
 * the workload exactly where the source's stopped.
 *
 * @param stepsReplayed vCPU steps replayed from the saved states, all vCPUs together
 * @param problemCount  problems found
 * @param problems      the first {@link #MAX_LISTED} of them, each naming the vCPU and what is wrong
 */
public record ContinuationCheck(long stepsReplayed, long problemCount, List<String> problems) {
    public static final int MAX_LISTED = 16;

    public ContinuationCheck {
        problems = List.copyOf(problems);
    }

    public boolean ok() {
        return problemCount == 0;
    }

    @Override
    public String toString() {
        return ok() ? "continuation ok (" + stepsReplayed + " steps replayed)"
                : problemCount + " continuation problem(s) after " + stepsReplayed + " steps: "
                        + String.join("; ", problems);
    }
}
