package dev.ferry.vfio.check;

import dev.ferry.vfio.device.VfioException;

import java.util.OptionalLong;

import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;

/**
 * {@link Rule#LOAD}: state saved by one instance loads into another, across three generations
 * opened one after the other (each closed before the next opens, so one physical device serves):
 * <ol>
 *   <li>the source runs, saves (the pre-copy way when it has PRE_COPY, with the workload run once
 *       mid-way so that dirty data follows the initial data; else STOP_COPY), and is closed;</li>
 *   <li>a fresh instance loads that state — RESUMING→STOP must accept it — runs, and saves again
 *       straight through STOP_COPY;</li>
 *   <li>a third instance loads the state the loaded one saved, and must accept it and run.</li>
 * </ol>
 * What the uAPI alone shows is acceptance: a kernel device is checked that far. Instances that
 * offer a deterministic workload and a state digest (emulated ones) are also compared: the loaded
 * instance's digest must equal the source's at the moment it saved, and again after both ran the
 * same workload steps — "behaves the same", not just "was accepted".
 */
final class LoadTest {
    private LoadTest() {
    }

    static void run(CheckRun run, CheckTarget target) throws CheckAbortedException {
        Findings f = run.findings;
        int steps = run.options.workloadSteps();
        StateImage image0 = null;
        StateImage image1 = null;
        try {
            long d0;
            long d0After;
            boolean replay;
            String source0;
            try (DeviceSession g0 = DeviceSession.open(run, target, true)) {
                source0 = g0.name();
                replay = g0.replayable() && g0.digest().isPresent();
                image0 = new StateImage(Saving.imageCap(Saving.dataSize(g0)));
                if (replay) {
                    g0.advance(steps);
                }
                Saving.Result saved;
                if (g0.supports(PRE_COPY)) {
                    StateImage img = image0;
                    saved = Saving.preCopy(g0, img, replay ? () -> g0.advance(steps) : null);
                } else {
                    saved = Saving.stopCopy(g0, image0);
                }
                if (!saved.complete) {
                    f.note(Rule.LOAD, "not exercised: the source instance could not save its state (see the rules"
                            + " violated above)");
                    return;
                }
                d0 = replay ? g0.digest().getAsLong() : 0;
                d0After = 0;
                if (replay) {
                    if (!g0.set(RUNNING).ok()) {
                        return;
                    }
                    g0.advance(steps);
                    if (!g0.set(STOP).ok()) {
                        return;
                    }
                    d0After = g0.digest().getAsLong();
                }
            }

            long d1;
            String source1;
            try (DeviceSession g1 = DeviceSession.open(run, target, replay)) {
                source1 = g1.name();
                boolean accepted = load(g1, image0, source0);
                run.ownStateAccepted = accepted;
                if (!accepted) {
                    return;
                }
                if (replay) {
                    OptionalLong loaded = g1.digest();
                    f.expect(Rule.LOAD, loaded.getAsLong() == d0, "after loading, " + g1.name() + "'s state digest "
                            + hex(loaded.getAsLong()) + " differs from the source's " + hex(d0) + " when it saved");
                }
                if (!g1.set(RUNNING).ok()) {
                    return;
                }
                if (replay) {
                    g1.advance(steps);
                }
                if (!g1.set(STOP).ok()) {
                    return;
                }
                if (replay) {
                    long after = g1.digest().getAsLong();
                    f.expect(Rule.LOAD, after == d0After, "after the same " + steps + " workload steps on both, "
                            + g1.name() + "'s state digest " + hex(after) + " differs from the source's "
                            + hex(d0After));
                }
                image1 = new StateImage(Saving.imageCap(Saving.dataSize(g1)));
                Saving.Result saved = Saving.stopCopy(g1, image1);
                if (!saved.complete) {
                    f.note(Rule.LOAD, "the third generation was not tried: the loaded instance could not save");
                    return;
                }
                d1 = replay ? g1.digest().getAsLong() : 0;
            }

            try (DeviceSession g2 = DeviceSession.open(run, target, replay)) {
                boolean accepted = load(g2, image1, source1 + " (itself loaded from " + source0 + ")");
                if (accepted) {
                    if (replay) {
                        long loaded = g2.digest().getAsLong();
                        f.expect(Rule.LOAD, loaded == d1, "after loading, " + g2.name() + "'s state digest "
                                + hex(loaded) + " differs from the one of the loaded instance that saved it, " + hex(d1));
                    }
                    g2.set(RUNNING);
                }
            }
            f.note(Rule.LOAD, replay
                    ? "compared state digests after each load and after " + steps + " identical workload steps"
                    : "this device kind shows no workload or state digest: checked that its saved state loads, and"
                            + " that what a loaded instance saves loads into a third; whether the loaded device"
                            + " behaves the same is beyond what the uAPI shows");
        } finally {
            if (image0 != null) {
                image0.close();
            }
            if (image1 != null) {
                image1.close();
            }
        }
    }

    /**
     * RUNNING → RESUMING, the image written, → STOP: true if the device accepted it. A refusal is
     * a {@link Rule#LOAD} violation naming the instance that saved the image ({@code source}).
     */
    static boolean load(DeviceSession s, StateImage image, String source) throws CheckAbortedException {
        Findings f = s.findings();
        DeviceSession.SetOutcome enter = s.set(RESUMING);
        if (!enter.ok() || enter.fd() == null) {
            f.note(Rule.LOAD, "not exercised on " + s.name() + ": it could not enter RESUMING");
            return false;
        }
        try {
            long written;
            try {
                written = s.writeAll(enter.fd(), image.address(), image.size());
            } catch (VfioException e) {
                f.violation(Rule.LOAD, "writing the " + image.size() + " bytes " + source + " saved into "
                        + s.name() + " (RESUMING) failed: " + DeviceSession.message(e));
                return false;
            }
            if (written != image.size()) {
                f.violation(Rule.LOAD, s.name() + " stopped taking the state " + source + " saved after " + written
                        + " of " + image.size() + " bytes");
                return false;
            }
            DeviceSession.SetOutcome done = s.trySet(STOP);
            if (!done.ok()) {
                f.violation(Rule.LOAD, "RESUMING\u2192STOP on " + s.name() + " refused the " + image.size()
                        + " bytes " + source + " saved: " + DeviceSession.message(done.error()));
                return false;
            }
            f.pass(Rule.LOAD);
            s.findings().pass(Rule.ARCS);
            s.expectDead(enter.fd(), true, done.arc());
            return true;
        } finally {
            s.closeFd(enter.fd());
        }
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
