package dev.ferry.migration;

/**
 * Outbound port for migration events (the QMP server turns them into MIGRATION and
 * MIGRATION_PASS events). Called on the migration or incoming thread; must not block.
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
