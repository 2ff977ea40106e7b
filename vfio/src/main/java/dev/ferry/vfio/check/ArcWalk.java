package dev.ferry.vfio.check;

import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.VfioArc;
import dev.ferry.vfio.fsm.VfioMigrationFsm;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.ArrayList;
import java.util.List;

import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;

/**
 * Walks the device through the arc table its flags allow. For every supported state S: reach S
 * from RUNNING with one SET (the device walks the path itself, as it does for QEMU), then take one
 * legal single arc out of S; back to RUNNING; next arc. Each arc is taken
 * {@link VfioCheck.Options#repeat()} times and timed. Also, once per state, every request the
 * table refuses from it ({@link Rule#REFUSE}), and a reset from it ({@link Rule#RESET}).
 *
 * <p>Leaving RESUMING for STOP needs data the device accepts: the device's own saved state, used
 * only when the load test showed such state is accepted; otherwise those arcs are reported as not
 * exercised and the device leaves RESUMING by reset.
 *
 * <p>STOP_COPY→PRE_COPY and STOP_COPY→PRE_COPY_P2P are never sent to a PRE_COPY device: the
 * kernel forbids them, and kernels from the PRE_COPY addition until a 2026 fix spin forever in
 * the SET instead of refusing.
 */
final class ArcWalk {
    private final CheckRun run;
    private final Findings f;
    private final DeviceSession s;
    private final StateImage image;

    /**
     * @param image the device's own saved state, to finish resumes with; null when saving failed
     */
    ArcWalk(CheckRun run, DeviceSession s, StateImage image) {
        this.run = run;
        this.f = run.findings;
        this.s = s;
        this.image = image;
    }

    /** The states the device supports, in the kernel's order. */
    List<VfioDeviceState> states() {
        List<VfioDeviceState> out = new ArrayList<>();
        for (VfioDeviceState st : VfioDeviceState.values()) {
            if (s.supports(st)) {
                out.add(st);
            }
        }
        return out;
    }

    /** The legal single arcs out of {@code from}, in the kernel's order of targets. */
    List<VfioDeviceState> arcsFrom(VfioDeviceState from) {
        List<VfioDeviceState> out = new ArrayList<>();
        for (VfioDeviceState to : VfioDeviceState.values()) {
            if (s.supports(to) && VfioMigrationFsm.isLegalArc(from, to, s.caps)) {
                out.add(to);
            }
        }
        return out;
    }

    private boolean resumeDataUsable() {
        return image != null && Boolean.TRUE.equals(run.ownStateAccepted);
    }

    /** Every request the arc table refuses, from every supported state. */
    void refusals() throws CheckAbortedException {
        boolean forbiddenSkipped = false;
        for (VfioDeviceState from : states()) {
            List<VfioDeviceState> refused = new ArrayList<>();
            for (VfioDeviceState to : VfioDeviceState.values()) {
                if (to == from || VfioMigrationFsm.refusal(from, to, s.caps).isEmpty()) {
                    continue;
                }
                if (VfioMigrationFsm.isForbidden(from, to) && s.supports(PRE_COPY)) {
                    forbiddenSkipped = true;
                    continue;
                }
                refused.add(to);
            }
            if (refused.isEmpty()) {
                continue;
            }
            VfioDataFd fd = reach(from);
            if (s.expected != from) {
                continue;
            }
            try {
                for (VfioDeviceState to : refused) {
                    if (s.expected != from) {
                        break;
                    }
                    s.refuse(to);
                }
                s.returnToRunning(from == RESUMING ? fd : null, image);
            } finally {
                s.closeFd(fd);
            }
        }
        if (forbiddenSkipped) {
            f.note(Rule.REFUSE, "STOP_COPY\u2192PRE_COPY and STOP_COPY\u2192PRE_COPY_P2P were not sent: kernels with"
                    + " PRE_COPY support before the 2026 fix spin forever in that SET instead of refusing it");
        }
    }

    /** Every legal arc, {@code repeat} times, timed. */
    void arcs() throws CheckAbortedException {
        int repeat = run.options.repeat();
        boolean resumeSkipped = false;
        for (int rep = 0; rep < repeat; rep++) {
            for (VfioDeviceState from : states()) {
                for (VfioDeviceState to : arcsFrom(from)) {
                    if (from == RESUMING && !resumeDataUsable()) {
                        resumeSkipped = true;
                        continue;
                    }
                    arc(from, to);
                }
            }
        }
        if (resumeSkipped) {
            f.note(Rule.ARCS, "RESUMING\u2192STOP was not exercised with data: "
                    + (image == null ? "the device's own state could not be saved"
                    : "a fresh instance did not accept saved state (see rule load)"));
        }
    }

    /** Reaches {@code from}, takes {@code from→to}, checks the data fds, returns to RUNNING. */
    private void arc(VfioDeviceState from, VfioDeviceState to) throws CheckAbortedException {
        VfioDataFd held = reach(from);
        VfioDataFd opened = null;
        if (s.expected != from) {
            s.closeFd(held);
            s.returnToRunning(null, null);
            return;
        }
        try {
            if (from == RESUMING) {
                long n;
                try {
                    n = s.writeAll(held, image.address(), image.size());
                } catch (VfioException e) {
                    f.violation(Rule.ARCS, "writing " + image.size() + " bytes of the device's own saved state into"
                            + " RESUMING failed: " + DeviceSession.message(e));
                    return;
                }
                if (n != image.size()) {
                    f.violation(Rule.ARCS, "RESUMING stopped taking the device's own saved state after " + n + " of "
                            + image.size() + " bytes");
                    return;
                }
            }
            DeviceSession.SetOutcome out = s.set(to);
            if (!out.ok()) {
                return;
            }
            run.recordArc(new VfioArc(from, to), out.nanos());
            opened = out.fd();
            if (held != null) {
                boolean sameSession = DeviceSession.saving(from) && DeviceSession.saving(to);
                if (sameSession) {
                    s.expectAlive(held, out.arc());
                } else {
                    s.expectDead(held, from == RESUMING, out.arc());
                }
            }
        } finally {
            s.closeFd(held);
            try {
                s.returnToRunning(opened != null && to == RESUMING ? opened : null, image);
            } finally {
                s.closeFd(opened);
            }
        }
    }

    /**
     * One SET from RUNNING to {@code state}; returns the data fd the SET opened (if any). The
     * caller checks {@code s.expected} to see whether the device got there.
     */
    private VfioDataFd reach(VfioDeviceState state) throws CheckAbortedException {
        if (s.expected != RUNNING) {
            s.returnToRunning(null, null);
        }
        if (state == RUNNING) {
            return null;
        }
        DeviceSession.SetOutcome out = s.set(state);
        return out.ok() ? out.fd() : null;
    }

    /**
     * A reset from every supported state: the device must be RUNNING afterwards, and a data fd
     * open at the time must be dead.
     */
    void resets() throws CheckAbortedException {
        for (VfioDeviceState from : states()) {
            VfioDataFd fd = reach(from);
            if (s.expected != from) {
                s.closeFd(fd);
                continue;
            }
            try {
                boolean ok = s.reset();
                if (ok && fd != null) {
                    s.expectDead(fd, from == RESUMING, "VFIO_DEVICE_RESET in " + from);
                }
            } finally {
                s.closeFd(fd);
            }
            s.returnToRunning(null, null);
        }
        if (f.checks(Rule.RESET) > 0 && !f.violated(Rule.RESET)) {
            f.note(Rule.RESET, "reset from every supported state"
                    + (run.sawError ? ", and from ERROR" : "; ERROR was never reached, so reset from ERROR was not seen"));
        }
    }
}
