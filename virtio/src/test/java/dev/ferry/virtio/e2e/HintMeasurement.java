package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;

import java.time.Duration;
import dev.ferry.virtio.balloon.BalloonCounters;
import dev.ferry.virtio.guest.BalloonDriverArea;

import java.util.List;
import java.util.Map;

/**
 * One migration of a soft guest that wrote a region and freed it, with free page hinting on or
 * off: what went on the wire, how long it took, what hinting did, and whether the destination's
 * RAM is right (everything but the hinted free pages equal; the pages the guest reused after
 * hinting them included).
 */
record HintMeasurement(boolean hinting, long ram, long free, long bytesTransferred, long normalPages,
                       long totalTimeMs, long downtimeMs, long hintRounds, long hintedPages, long reusedPages,
                       List<String> problems) {

    /** Migrates over TCP on loopback (Netty, with the return path), source and destination in this process. */
    static HintMeasurement run(boolean hinting, long ram, long free, long bandwidth) throws Exception {
        Map<String, Object> options = Map.of("free-page-hint", hinting);
        try (NettyMigrationTransports transports = new NettyMigrationTransports();
             SoftBalloonVm src = new SoftBalloonVm("src", false, ram, free, options, true, 20 * SoftBalloonVm.MiB);
             SoftBalloonVm dst = new SoftBalloonVm("dst", true, ram, free, options, true, 20 * SoftBalloonVm.MiB)) {
            src.machine.vmStart();
            src.await("the driver booted", () -> src.reg(BalloonDriverArea.R_MAGIC) == BalloonDriverArea.MAGIC);
            DestinationMigration in = new DestinationMigration(dst.machine, transports, MigrationCapabilities.defaults(),
                    MigrationEventSink.NONE, false);
            String uri = in.listen("tcp:127.0.0.1:0");
            SourceMigration out = new SourceMigration(src.machine, transports,
                    MigrationParameters.defaults().withMaxBandwidth(bandwidth), MigrationCapabilities.defaults(),
                    MigrationEventSink.NONE);
            out.start(uri);
            MigrationStatus st = out.await(Duration.ofMinutes(5));
            MigrationStatus dt = in.await(Duration.ofMinutes(1));
            if (st != MigrationStatus.COMPLETED || dt != MigrationStatus.COMPLETED) {
                throw new AssertionError("migration ended " + st.qapiName() + " / " + dt.qapiName() + ": "
                        + out.info().errorDesc() + " / " + in.errorDesc());
            }
            if (src.machine.runState() != RunState.POSTMIGRATE) {
                throw new AssertionError("source in " + src.machine.runState().qapiName());
            }
            MigrationInfo info = out.info();
            BalloonCounters c = src.balloon().counters();
            {
                List<String> problems = src.compareRam(dst);
                return new HintMeasurement(hinting, ram, free, info.ram().transferred(), info.ram().normal(),
                        info.totalTimeMs(), info.downtimeMs(), c.hintRounds(), c.hintedPages(),
                        src.reg(BalloonDriverArea.R_REUSE_WRITES), problems);
            }
        }
    }

    String row() {
        return String.format("| %s | %,d | %,d | %,d | %,d | %d | %d | %d |", hinting ? "on" : "off",
                bytesTransferred, normalPages, totalTimeMs, downtimeMs, hintRounds, hintedPages, reusedPages);
    }

    static String header() {
        return "| hinting | bytes on the wire | pages sent | total ms | downtime ms | hint rounds | pages hinted away | pages reused after hint |\n"
                + "|---|---|---|---|---|---|---|---|";
    }
}
