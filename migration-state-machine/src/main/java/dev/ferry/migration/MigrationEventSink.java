package dev.ferry.migration;

/**
 * Outbound port for migration events (the QMP server turns them into MIGRATION and
 * MIGRATION_PASS events when the {@code events} capability is on). Called on the migration or
 * incoming thread, always — whether to publish is the listener's choice; must not block for
 * long.
 */
public interface MigrationEventSink {
    MigrationEventSink NONE = new MigrationEventSink() {
        @Override
        public void status(MigrationStatus status) {
        }

        @Override
        public void pass(long pass) {
        }
    };

    void status(MigrationStatus status);

    void pass(long pass);
}
