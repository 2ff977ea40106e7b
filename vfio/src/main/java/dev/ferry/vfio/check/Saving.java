package dev.ferry.vfio.check;

import dev.ferry.core.sys.Errno;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.VfioDeviceState;

import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;

/**
 * Saves a device's state the two ways QEMU does, checking the rules of the saving data fd on the
 * way: {@link #stopCopy} (STOP_COPY straight away) and {@link #preCopy} (PRE_COPY, drained until
 * the device is idle, then PRE_COPY_P2P when the device has P2P, then STOP_COPY). Both end with
 * the device in STOP and the session's fd shown dead and closed.
 *
 * <p>A device that breaks a reading rule still yields its data where that is unambiguous (an
 * ENOMSG at the end of STOP_COPY is taken as the end, a failed read is retried once), so one
 * broken rule does not hide the others behind an unusable image.
 */
final class Saving {
    /** The smallest cap on one image: enough for any device state this check meets by default. */
    static final long MIN_IMAGE_CAP = 256L << 20;
    /** The largest cap: a device streaming more than this without an end is taken as endless. */
    static final long MAX_IMAGE_CAP = 4L << 30;

    /** What one save produced and measured; sizes are -1 where not measured. */
    static final class Result {
        boolean complete;
        long precopyInitialBytes = -1;
        long precopyBytes = -1;
        long precopyMaxDirtyBytes = -1;
        long stopCopyEstimate = -1;
        long stopCopyBytes = -1;
    }

    private Saving() {
    }

    /** The image cap for a device estimating {@code estimate} bytes of STOP_COPY data. */
    static long imageCap(long estimate) {
        long sixteenfold = estimate > MAX_IMAGE_CAP / 16 ? MAX_IMAGE_CAP : estimate * 16;
        return Math.max(MIN_IMAGE_CAP, Math.min(MAX_IMAGE_CAP, sixteenfold));
    }

    /** RUNNING or STOP → STOP_COPY, read to the end, → STOP. */
    static Result stopCopy(DeviceSession s, StateImage image) throws CheckAbortedException {
        Result r = new Result();
        DeviceSession.SetOutcome enter = s.set(STOP_COPY);
        if (!enter.ok() || enter.fd() == null) {
            return r;
        }
        VfioDataFd fd = enter.fd();
        try {
            r.stopCopyEstimate = dataSize(s);
            if (s.supports(PRE_COPY)) {
                expectNoPrecopyInfo(s, fd, enter.arc());
            }
            long start = image.size();
            boolean ended = readToEnd(s, fd, image);
            r.stopCopyBytes = image.size() - start;
            DeviceSession.SetOutcome leave = s.set(STOP);
            if (leave.ok()) {
                s.expectDead(fd, false, leave.arc());
            }
            r.complete = ended && leave.ok();
        } finally {
            s.closeFd(fd);
        }
        return r;
    }

    /**
     * RUNNING → PRE_COPY, drained until idle; then {@code midway} (a workload that changes the
     * device, or null) and a second drain; PRE_COPY_P2P if the device has P2P; STOP_COPY to the
     * end; → STOP.
     */
    static Result preCopy(DeviceSession s, StateImage image, Midway midway) throws CheckAbortedException {
        Findings f = s.findings();
        Result r = new Result();
        if (s.expected != RUNNING) {
            s.returnToRunning(null, null);
        }
        DeviceSession.SetOutcome enter = s.set(PRE_COPY);
        if (!enter.ok() || enter.fd() == null) {
            return r;
        }
        VfioDataFd fd = enter.fd();
        try {
            Drain drain = new Drain(s, fd, image, r);
            PrecopyInfo first = drain.info(PRE_COPY, "right after " + enter.arc());
            if (first != null) {
                r.precopyInitialBytes = first.initialBytes();
                if (first.initialBytes() == 0) {
                    f.note(Rule.PRECOPY_INFO, "initial_bytes was 0 on entering PRE_COPY; the uAPI says it should start"
                            + " non-zero");
                }
            }
            r.precopyBytes = 0;
            r.precopyMaxDirtyBytes = first == null ? 0 : first.dirtyBytes();
            if (!drain.untilIdle(PRE_COPY)) {
                return r;
            }
            if (midway != null && midway.run()) {
                drain.info(PRE_COPY, "after the device's workload ran");
                if (!drain.untilIdle(PRE_COPY)) {
                    return r;
                }
            }
            VfioDeviceState last = PRE_COPY;
            if (s.supports(PRE_COPY_P2P)) {
                DeviceSession.SetOutcome p2p = s.set(PRE_COPY_P2P);
                if (!p2p.ok()) {
                    return r;
                }
                last = PRE_COPY_P2P;
                drain.info(PRE_COPY_P2P, "after " + p2p.arc());
                if (!drain.untilIdle(PRE_COPY_P2P)) {
                    return r;
                }
            }
            DeviceSession.SetOutcome stop = s.set(STOP_COPY);
            if (!stop.ok()) {
                return r;
            }
            r.stopCopyEstimate = dataSize(s);
            expectNoPrecopyInfo(s, fd, last + "\u2192" + STOP_COPY);
            long start = image.size();
            boolean ended = readToEnd(s, fd, image);
            r.stopCopyBytes = image.size() - start;
            DeviceSession.SetOutcome leave = s.set(STOP);
            if (leave.ok()) {
                s.expectDead(fd, false, leave.arc());
            }
            r.complete = ended && leave.ok();
        } finally {
            s.closeFd(fd);
        }
        return r;
    }

    /** A workload run in the middle of pre-copy; returns whether it changed anything. */
    @FunctionalInterface
    interface Midway {
        boolean run() throws CheckAbortedException;
    }

    /** MIG_DATA_SIZE, or -1 when the device does not answer it (kernels before 6.2 lack it). */
    static long dataSize(DeviceSession s) throws CheckAbortedException {
        try {
            return s.run().call("GET MIG_DATA_SIZE", () -> s.device().stopCopyLength());
        } catch (VfioException e) {
            s.findings().note(Rule.EOF, "GET MIG_DATA_SIZE failed (" + Errno.name(e.errno()) + "); STOP_COPY sizes"
                    + " have no estimate to compare with");
            return -1;
        }
    }

    /** In STOP_COPY, PRECOPY_INFO must fail with EINVAL. */
    private static void expectNoPrecopyInfo(DeviceSession s, VfioDataFd fd, String after) throws CheckAbortedException {
        try {
            PrecopyInfo info = s.precopyInfo(fd, STOP_COPY.toString());
            s.findings().violation(Rule.PRECOPY_INFO, "PRECOPY_INFO in STOP_COPY (after " + after + ") answered initial "
                    + info.initialBytes() + ", dirty " + info.dirtyBytes() + " instead of failing with EINVAL");
        } catch (VfioException e) {
            s.findings().expect(Rule.PRECOPY_INFO, e.errno() == Errno.EINVAL, "PRECOPY_INFO in STOP_COPY failed with "
                    + Errno.name(e.errno()) + " instead of EINVAL");
        }
    }

    /**
     * Reads STOP_COPY data into {@code image} until the end: 0, and 0 again on the next reads.
     * Returns whether the stream ended (ENOMSG counts as an end, with an {@link Rule#EOF}
     * violation).
     */
    static boolean readToEnd(DeviceSession s, VfioDataFd fd, StateImage image) throws CheckAbortedException {
        Findings f = s.findings();
        long start = image.size();
        int failures = 0;
        while (true) {
            long room = image.room();
            if (room == 0) {
                f.violation(Rule.EOF, "STOP_COPY produced more than " + image.cap() + " bytes without an end");
                return false;
            }
            long n;
            try {
                n = s.read(fd, image.tail(), Math.min(room, DeviceSession.IO_CHUNK), STOP_COPY.toString());
            } catch (VfioException e) {
                f.violation(Rule.READ, "a STOP_COPY read after " + (image.size() - start) + " bytes failed: "
                        + DeviceSession.message(e));
                if (++failures > 1) {
                    return false;
                }
                continue;
            }
            if (n > 0) {
                if (n > Math.min(room, DeviceSession.IO_CHUNK)) {
                    f.violation(Rule.READ, "a STOP_COPY read returned " + n + " bytes for a buffer of "
                            + Math.min(room, DeviceSession.IO_CHUNK));
                    return false;
                }
                image.appended(n);
                f.pass(Rule.READ);
                continue;
            }
            if (n == VfioDataFd.NO_DATA) {
                f.violation(Rule.EOF, "a STOP_COPY read after " + (image.size() - start) + " bytes returned -1/ENOMSG"
                        + " instead of 0 (end of stream)");
                return true;
            }
            if (n != 0) {
                f.violation(Rule.READ, "a STOP_COPY read returned " + n);
                return false;
            }
            f.pass(Rule.EOF);
            for (int again = 0; again < 2; again++) {
                try {
                    long m = s.read(fd, s.scratch(), 4096, STOP_COPY.toString());
                    f.expect(Rule.EOF, m == 0, "a STOP_COPY read after the end (" + (image.size() - start)
                            + " bytes) returned " + DeviceSession.describeRead(m) + " instead of 0");
                } catch (VfioException e) {
                    f.violation(Rule.EOF, "a STOP_COPY read after the end failed with " + Errno.name(e.errno())
                            + " instead of returning 0");
                }
            }
            return true;
        }
    }

    /** Reading in PRE_COPY*: the ENOMSG and PRECOPY_INFO rules. */
    private static final class Drain {
        private final DeviceSession s;
        private final Findings f;
        private final VfioDataFd fd;
        private final StateImage image;
        private final Result r;
        private long lastInitial = -1;
        private long firstInitial = -1;
        private int failures;

        Drain(DeviceSession s, VfioDataFd fd, StateImage image, Result r) {
            this.s = s;
            this.f = s.findings();
            this.fd = fd;
            this.image = image;
            this.r = r;
        }

        /** PRECOPY_INFO, which must work in PRE_COPY*; checks initial_bytes never grows. */
        PrecopyInfo info(VfioDeviceState state, String when) throws CheckAbortedException {
            PrecopyInfo info;
            try {
                info = s.precopyInfo(fd, state.toString());
            } catch (VfioException e) {
                f.violation(Rule.PRECOPY_INFO, "PRECOPY_INFO in " + state + " " + when + " failed: "
                        + DeviceSession.message(e));
                return null;
            }
            if (lastInitial >= 0) {
                f.expect(Rule.PRECOPY_INFO, info.initialBytes() <= lastInitial, "initial_bytes grew from "
                        + lastInitial + " to " + info.initialBytes() + " in " + state + " " + when);
            } else {
                f.pass(Rule.PRECOPY_INFO);
                firstInitial = info.initialBytes();
            }
            lastInitial = Math.min(lastInitial < 0 ? Long.MAX_VALUE : lastInitial, info.initialBytes());
            r.precopyMaxDirtyBytes = Math.max(r.precopyMaxDirtyBytes, info.dirtyBytes());
            return info;
        }

        /**
         * Reads until a read says there is nothing now; returns false when reading failed twice
         * (the save is abandoned). A device never idle within the wait leaves the ENOMSG rule
         * unexercised for this save and the save goes on.
         */
        boolean untilIdle(VfioDeviceState state) throws CheckAbortedException {
            long deadline = System.nanoTime() + s.run().options.precopyIdleWait().toNanos();
            long readHere = 0;
            while (System.nanoTime() - deadline < 0) {
                long room = image.room();
                if (room == 0) {
                    f.violation(Rule.ENOMSG, "pre-copy produced more than " + image.cap() + " bytes without going idle");
                    return false;
                }
                long n;
                try {
                    n = s.read(fd, image.tail(), Math.min(room, DeviceSession.IO_CHUNK), state.toString());
                } catch (VfioException e) {
                    f.violation(Rule.READ, "a " + state + " read after " + r.precopyBytes + " bytes failed: "
                            + DeviceSession.message(e));
                    if (++failures > 1) {
                        return false;
                    }
                    continue;
                }
                if (n > 0) {
                    image.appended(n);
                    r.precopyBytes += n;
                    readHere += n;
                    f.pass(Rule.READ);
                    info(state, "after reading " + r.precopyBytes + " bytes");
                    continue;
                }
                if (n == 0) {
                    f.violation(Rule.ENOMSG, "an idle " + state + " read returned 0 (end of stream) instead of"
                            + " -1/ENOMSG, after " + r.precopyBytes + " bytes");
                } else if (n == VfioDataFd.NO_DATA) {
                    f.pass(Rule.ENOMSG);
                } else {
                    f.violation(Rule.READ, "a " + state + " read returned " + n);
                    return false;
                }
                PrecopyInfo idle = info(state, "when reads said there was nothing more");
                if (idle != null) {
                    f.expect(Rule.PRECOPY_INFO, idle.initialBytes() == 0, "initial_bytes was still "
                            + idle.initialBytes() + " when " + state + " reads had nothing more, after "
                            + r.precopyBytes + " bytes were read" + (idle.initialBytes() == firstInitial
                            ? " (it never counted down)" : ""));
                }
                return true;
            }
            f.note(Rule.ENOMSG, "a " + state + " session never went idle within "
                    + s.run().options.precopyIdleWait().toMillis() + " ms (" + readHere + " bytes read);"
                    + " its idle read was not seen");
            return true;
        }
    }
}
