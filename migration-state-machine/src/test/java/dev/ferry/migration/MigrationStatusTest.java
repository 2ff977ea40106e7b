package dev.ferry.migration;

import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

import static dev.ferry.migration.MigrationStatus.ACTIVE;
import static dev.ferry.migration.MigrationStatus.CANCELLED;
import static dev.ferry.migration.MigrationStatus.CANCELLING;
import static dev.ferry.migration.MigrationStatus.COMPLETED;
import static dev.ferry.migration.MigrationStatus.DEVICE;
import static dev.ferry.migration.MigrationStatus.FAILED;
import static dev.ferry.migration.MigrationStatus.NONE;
import static dev.ferry.migration.MigrationStatus.SETUP;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Walks every (from, to) cell of the status table against the table in docs/migration-engine.md. */
class MigrationStatusTest {
    private static final Map<MigrationStatus, Set<MigrationStatus>> TABLE = Map.of(
            NONE, EnumSet.of(SETUP),
            SETUP, EnumSet.of(ACTIVE, FAILED, CANCELLING),
            ACTIVE, EnumSet.of(DEVICE, COMPLETED, FAILED, CANCELLING),
            DEVICE, EnumSet.of(COMPLETED, FAILED, CANCELLING),
            CANCELLING, EnumSet.of(CANCELLED, COMPLETED));

    @Test
    void everyCell() {
        for (MigrationStatus from : MigrationStatus.values()) {
            for (MigrationStatus to : MigrationStatus.values()) {
                boolean expected = TABLE.getOrDefault(from, Set.of()).contains(to);
                assertEquals(expected, from.canBecome(to), from.qapiName() + " → " + to.qapiName());
            }
        }
    }

    @Test
    void finalStatesAreFinalAndRunningOnesRun() {
        for (MigrationStatus s : MigrationStatus.values()) {
            assertEquals(s == COMPLETED || s == FAILED || s == CANCELLED, s.isFinal(), s.qapiName());
        }
        assertEquals(EnumSet.of(SETUP, ACTIVE, CANCELLING, MigrationStatus.PRE_SWITCHOVER, DEVICE,
                MigrationStatus.WAIT_UNPLUG), EnumSet.copyOf(java.util.Arrays.stream(MigrationStatus.values())
                .filter(MigrationStatus::isRunning).toList()));
    }

    @Test
    void qapiNamesRoundTrip() {
        for (MigrationStatus s : MigrationStatus.values()) {
            assertEquals(s, MigrationStatus.fromQapi(s.qapiName()));
        }
        assertEquals("pre-switchover", MigrationStatus.PRE_SWITCHOVER.qapiName());
    }
}
