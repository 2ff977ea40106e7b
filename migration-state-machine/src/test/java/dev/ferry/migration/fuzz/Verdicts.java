package dev.ferry.migration.fuzz;

import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration.Incoming;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** What every fuzz target of the migration stream accepts as an outcome. */
public final class Verdicts {
    private Verdicts() {
    }

    /** Loaded, or failed with a reason that says something (not empty, not an exception's class name alone). */
    public static void assertLoadedOrRefused(Incoming r) {
        assertTrue(r.status() == MigrationStatus.COMPLETED || r.status() == MigrationStatus.FAILED,
                () -> "the load neither completed nor failed within the wait: " + r);
        if (r.status() == MigrationStatus.FAILED) {
            assertTrue(r.errorDesc() != null && r.errorDesc().length() > 10, () -> "a refusal must say why: " + r);
            assertTrue(!r.errorDesc().startsWith("internal error"), () -> "an internal error is a bug: " + r);
            assertTrue(r.errorDesc().chars().noneMatch(Character::isISOControl),
                    () -> "stream bytes reach error-desc unescaped: " + r);
        }
    }
}
