package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.FaultyDevice;
import dev.ferry.migration.testing.FaultyDevice.Phase;
import dev.ferry.migration.transport.NettyMigrationTransports;
import dev.ferry.virtio.balloon.BalloonConfig;
import dev.ferry.virtio.balloon.FreePageHinting;
import dev.ferry.virtio.guest.BalloonDriverArea;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A migration of a guest with an inflated balloon and hinting under way fails or is cancelled in
 * each phase — setup, iteration, after the source VM stopped, by cancel while active, and on the
 * destination's load. Every time the source runs again with its balloon intact (actual, the
 * inflated set, holes in the memfd), hinting ends DONE and the guest's round ends, no hint reaches
 * a migration any more, and the balloon still inflates and deflates.
 */
@Timeout(180)
class SoftBalloonFailureTest {
    static NettyMigrationTransports transports;

    @BeforeAll
    static void transports() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    @Test
    void saveSetupFails() throws Exception {
        assertSourceKeepsTheBalloon(Phase.SAVE_SETUP, Phase.NONE, false, MigrationStatus.FAILED);
    }

    @Test
    void saveIterateFailsWhileTheGuestHints() throws Exception {
        assertSourceKeepsTheBalloon(Phase.SAVE_ITERATE, Phase.NONE, false, MigrationStatus.FAILED);
    }

    @Test
    void sourceFailsAfterTheVmStopped() throws Exception {
        assertSourceKeepsTheBalloon(Phase.SAVE_COMPLETE, Phase.NONE, false, MigrationStatus.FAILED);
    }

    @Test
    void cancelWhileActive() throws Exception {
        assertSourceKeepsTheBalloon(Phase.NONE, Phase.NONE, true, MigrationStatus.CANCELLED);
    }

    @Test
    void destinationFailsToLoad() throws Exception {
        assertSourceKeepsTheBalloon(Phase.NONE, Phase.LOAD_STATE_END, false, MigrationStatus.FAILED);
    }

    private static void assertSourceKeepsTheBalloon(Phase sourceFails, Phase destinationFails, boolean cancel,
                                                    MigrationStatus expected) throws Exception {
        try (SoftBalloonVm src = new SoftBalloonVm("src", false, 64 * SoftBalloonVm.MiB, 8 * SoftBalloonVm.MiB,
                Map.of(), true, 20 * SoftBalloonVm.MiB);
             SoftBalloonVm dst = new SoftBalloonVm("dst", true, 64 * SoftBalloonVm.MiB, 8 * SoftBalloonVm.MiB,
                     Map.of(), true, 20 * SoftBalloonVm.MiB)) {
            src.machine.vmStart();
            src.await("the driver booted", () -> src.reg(BalloonDriverArea.R_MAGIC) == BalloonDriverArea.MAGIC);
            src.balloonTo(600);

            src.machine.migration().registerLive(new FaultyDevice(sourceFails, Phase.NONE, () -> { }),
                    MigrationPriority.DEVICE);
            dst.machine.migration().registerLive(new FaultyDevice(destinationFails, Phase.NONE, () -> { }),
                    MigrationPriority.DEVICE);
            AtomicReference<SourceMigration> ref = new AtomicReference<>();
            AtomicBoolean cancelled = new AtomicBoolean();
            MigrationEventSink sink = new MigrationEventSink() {
                @Override
                public void status(MigrationStatus s) {
                }

                @Override
                public void pass(long pass) {
                    if (cancel && pass >= 2 && cancelled.compareAndSet(false, true)) {
                        ref.get().cancel();
                    }
                }
            };
            DestinationMigration in = new DestinationMigration(dst.machine, transports, MigrationCapabilities.defaults(),
                    MigrationEventSink.NONE, true);
            String uri = in.listen("tcp:127.0.0.1:0");
            SourceMigration out = new SourceMigration(src.machine, transports,
                    MigrationParameters.defaults().withMaxBandwidth(32 * SoftBalloonVm.MiB), MigrationCapabilities.defaults(),
                    sink);
            ref.set(out);
            out.start(uri);
            out.await(Duration.ofSeconds(60));
            try {
                in.await(Duration.ofSeconds(20));
            } catch (TimeoutException e) {
                in.abort();
                in.await(Duration.ofSeconds(20));
            }
            assertEquals(expected, out.status(), () -> out.info().errorDesc());
            assertEquals(RunState.RUNNING, src.machine.runState());

            if (sourceFails == Phase.SAVE_COMPLETE || destinationFails != Phase.NONE) {
                assertTrue(src.balloon().counters().hintRounds() >= 1, "the guest hinted during the whole precopy");
            }
            // Hinting is over: DONE published, no hint reaches a migration, the guest's round ends.
            assertEquals(FreePageHinting.State.DONE, src.balloon().hinting().state());
            assertEquals(FreePageHinting.CMD_ID_DONE, src.machine.mmio().read(
                    src.device.transport().base() + 0x100 + BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4));
            assertEquals(0, src.machine.migration().guestFreePageHint(src.freeBase, 4096));
            src.await("the guest's hint round ended", () -> src.reg(BalloonDriverArea.R_HINT_PHASE) == 0);

            // The balloon is as it was and still works.
            assertEquals(600, src.balloon().actualPages());
            assertEquals(600, src.machine.memory().discardedPages());
            assertEquals(0, src.inflatedPagesBacked());
            src.balloonTo(900);
            src.balloonTo(100);
            assertEquals(100, src.machine.memory().discardedPages());
            assertEquals(0, src.inflatedPagesBacked());
            assertEquals(0, src.reg(BalloonDriverArea.R_ERRORS));
            assertTrue(dst.machine.runState() != RunState.RUNNING, "the destination never ran");
        }
    }
}
