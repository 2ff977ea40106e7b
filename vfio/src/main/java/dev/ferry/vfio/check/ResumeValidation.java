package dev.ferry.vfio.check;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.VfioException;

import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;

/**
 * {@link Rule#RESUME_VALIDATES}: a device must not take garbage or half a state for its own.
 * Garbage is 4 KiB of fixed pseudo-random bytes; truncated data is the first half of the
 * device's own saved state. Rejection may come at the write or at RESUMING→STOP; accepting at
 * both is the violation. The device is then brought back to RUNNING (a reset, usually: a
 * resuming session that saw bad data has nowhere else to go).
 */
final class ResumeValidation {
    static final int GARBAGE = 4096;

    private ResumeValidation() {
    }

    static void run(DeviceSession s, StateImage ownState) throws CheckAbortedException {
        long garbage = s.scratch();
        long x = 0x9E3779B97F4A7C15L;
        for (int off = 0; off < GARBAGE; off += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            NativeMemory.putLong(garbage + off, x);
        }
        attempt(s, garbage, GARBAGE, GARBAGE + " bytes of garbage");
        if (ownState != null && ownState.size() >= 2) {
            long half = ownState.size() / 2;
            attempt(s, ownState.address(), half, "the first " + half + " of " + ownState.size()
                    + " bytes of a saved state");
        } else {
            s.findings().note(Rule.RESUME_VALIDATES, "truncated data was not tried: the device's own state could not"
                    + " be saved");
        }
    }

    private static void attempt(DeviceSession s, long address, long length, String what) throws CheckAbortedException {
        Findings f = s.findings();
        DeviceSession.SetOutcome enter = s.set(RESUMING);
        if (!enter.ok() || enter.fd() == null) {
            return;
        }
        try {
            boolean writeRejected = false;
            try {
                writeRejected = s.writeAll(enter.fd(), address, length) != length;
            } catch (VfioException e) {
                writeRejected = true;
            }
            DeviceSession.SetOutcome done = s.trySet(STOP);
            f.expect(Rule.RESUME_VALIDATES, !done.ok(), "RESUMING\u2192STOP accepted " + what
                    + (writeRejected ? " (after the write had been refused)" : ""));
            s.returnToRunning(null, null);
        } finally {
            s.closeFd(enter.fd());
        }
    }
}
