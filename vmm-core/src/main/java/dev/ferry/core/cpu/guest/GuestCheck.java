package dev.ferry.core.cpu.guest;

import java.util.List;

/**
 * The result of {@link GuestVerifier#verifyContinuation}: whether ferry-guest continued exactly
 * from the saved progress record.
 *
 * @param stepsReplayed guest steps replayed from the saved record up to the current one
 * @param problemCount  problems found
 * @param problems      the first {@link #MAX_LISTED} of them, each saying what is wrong and where
 */
public record GuestCheck(long stepsReplayed, long problemCount, List<String> problems) {
    public static final int MAX_LISTED = 16;

    public GuestCheck {
        problems = List.copyOf(problems);
    }

    public boolean ok() {
        return problemCount == 0;
    }

    @Override
    public String toString() {
        return ok() ? "ferry-guest continuation ok (" + stepsReplayed + " steps replayed)"
                : problemCount + " ferry-guest continuation problem(s) after " + stepsReplayed + " steps: "
                        + String.join("; ", problems);
    }
}
