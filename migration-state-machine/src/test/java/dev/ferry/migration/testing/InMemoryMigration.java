package dev.ferry.migration.testing;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;

import java.time.Duration;

/**
 * Runs the real engine over {@link MemoryTransports}, file style: {@link #save} migrates a machine
 * into an in-memory file and returns its bytes, {@link #load} feeds bytes to a destination
 * machine and reports how the incoming migration ended. Both wait on the engine's own threads
 * with a bound, so a hang shows as a failed test, never a stuck build.
 */
public final class InMemoryMigration {
    /** Far beyond what these tiny migrations need; only a hang reaches it. */
    public static final Duration WAIT = Duration.ofSeconds(20);

    private InMemoryMigration() {
    }

    /**
     * Migrates {@code source} (max-bandwidth unlimited, default capabilities; the file has no
     * return path) and returns the stream. Throws AssertionError unless the migration completed.
     */
    public static byte[] save(Machine source) throws Exception {
        return saveWithInfo(source).stream();
    }

    /** As {@link #save}, and what {@code query-migrate} reported at the end. */
    public static Saved saveWithInfo(Machine source) throws Exception {
        return saveWithInfo(source, MigrationParameters.defaults().withMaxBandwidth(0));
    }

    /** As {@link #saveWithInfo(Machine)} with the given parameters. */
    public static Saved saveWithInfo(Machine source, MigrationParameters params) throws Exception {
        MemoryTransports t = new MemoryTransports();
        SourceMigration m = new SourceMigration(source, t, params, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE);
        m.start(MemoryTransports.FILE_URI);
        MigrationStatus st = m.await(WAIT);
        if (st != MigrationStatus.COMPLETED) {
            throw new AssertionError("source migration ended " + st.qapiName() + ": " + m.info().errorDesc());
        }
        return new Saved(t.contents(MemoryTransports.FILE_URI), m.info());
    }

    /** A completed save: the stream and the source's final {@code query-migrate}. */
    public record Saved(byte[] stream, MigrationInfo info) {
    }

    /** Loads {@code stream} into {@code destination} through a file-like connection of 64 KiB chunks. */
    public static Incoming load(Machine destination, byte[] stream) throws Exception {
        return load(destination, stream, new MemoryTransports());
    }

    /** Loads {@code stream} into {@code destination} through {@code transports} (chunking, return path). */
    public static Incoming load(Machine destination, byte[] stream, MemoryTransports transports) throws Exception {
        transports.serve(MemoryTransports.FILE_URI, stream);
        DestinationMigration d = new DestinationMigration(destination, transports, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, true);
        d.digestMemoryAtLoad(true);
        d.listen(MemoryTransports.FILE_URI);
        MigrationStatus st = d.await(WAIT);
        return new Incoming(st, d.errorDesc(), destination.runState(), d.memoryDigestAtLoad(),
                transports.lastAccepted());
    }

    /**
     * How an incoming migration ended.
     *
     * @param memoryDigest the destination's digest when loading finished (null unless it did)
     * @param connection   the connection the destination read (chunks served, return-path bytes)
     */
    public record Incoming(MigrationStatus status, String errorDesc, RunState runState, Long memoryDigest,
                           MemoryConnection connection) {
        @Override
        public String toString() {
            return status.qapiName() + (errorDesc == null ? "" : " (" + errorDesc + ")") + ", VM " + runState.qapiName();
        }
    }
}
