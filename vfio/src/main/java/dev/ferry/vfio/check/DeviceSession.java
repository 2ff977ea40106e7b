package dev.ferry.vfio.check;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.fsm.VfioMigrationFsm;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;

/**
 * One opened instance as the check drives it: every device call goes through the run's
 * watchdog, and the checks every call owes are made here — each SET is followed by a GET
 * ({@link Rule#READBACK}), its data fd is compared with what the arc table says the last arc
 * opens ({@link Rule#SESSION_FD}), a failed SET is followed by a GET that must land on the
 * requested path ({@link Rule#FAILED_SET}).
 *
 * <p>{@link #expected} is the state the check believes the device is in: the target of the last
 * successful SET (not what GET said, so that a device with a broken readback is still walked
 * correctly), or what GET said after a failure. Used by the check's thread only.
 */
final class DeviceSession implements AutoCloseable {
    /** One read or write: QEMU's migration buffer size. */
    static final long IO_CHUNK = 1L << 20;

    private final CheckRun run;
    private final Findings findings;
    private final CheckTarget target;
    private final boolean replayable;
    private final Mapping scratch = Mapping.anonymous(IO_CHUNK);
    private CheckedDevice instance;
    private VfioDevice device;
    MigCapabilities caps;
    VfioDeviceState expected;

    /** The outcome of one SET. */
    record SetOutcome(VfioDeviceState from, VfioDeviceState target, VfioDataFd fd, VfioException error, long nanos) {
        boolean ok() {
            return error == null;
        }

        String arc() {
            return from + "\u2192" + target;
        }
    }

    private DeviceSession(CheckRun run, CheckTarget target, boolean replayable) {
        this.run = run;
        this.findings = run.findings;
        this.target = target;
        this.replayable = replayable;
    }

    /**
     * Opens an instance of {@code target} — a replayable one when {@code preferReplayable} and the
     * target has them — and checks {@link Rule#OPEN}. Stops the check when no instance opens or
     * the device cannot say its migration flags.
     */
    static DeviceSession open(CheckRun run, CheckTarget target, boolean preferReplayable) throws CheckAbortedException {
        CheckedDevice opened = null;
        boolean replay = false;
        try {
            if (preferReplayable) {
                Optional<CheckedDevice> r = run.call("open " + target.description(), target::openReplayable);
                if (r.isPresent()) {
                    opened = r.get();
                    replay = true;
                }
            }
            if (opened == null) {
                opened = run.call("open " + target.description(), target::open);
            }
        } catch (VfioException e) {
            run.findings.violation(Rule.OPEN, "opening an instance of " + target.description() + " failed: " + e.getMessage());
            throw new CheckAbortedException("the check stopped: no instance of " + target.description() + " opens");
        }
        DeviceSession s = new DeviceSession(run, target, replay);
        try {
            s.attach(opened);
        } catch (CheckAbortedException | RuntimeException e) {
            s.close();
            throw e;
        }
        return s;
    }

    private void attach(CheckedDevice opened) throws CheckAbortedException {
        instance = opened;
        device = opened.device();
        String name = device.name();
        try {
            caps = run.call("GET MIGRATION", device::migrationFlags);
        } catch (VfioException e) {
            findings.violation(Rule.OPEN, "GET MIGRATION on " + name + " failed: " + e.getMessage());
            throw new CheckAbortedException("the check stopped: " + name + " reports no migration support ("
                    + e.getMessage() + "); nothing else can be checked");
        }
        if (!caps.migratable()) {
            findings.violation(Rule.OPEN, "GET MIGRATION on " + name + " reports " + caps + " without STOP_COPY");
            throw new CheckAbortedException("the check stopped: " + name + " cannot migrate (flags " + caps + ")");
        }
        if (run.deviceName == null) {
            run.deviceName = name;
            run.capabilities = caps;
            try {
                run.dmaLogging = run.call("PROBE DMA_LOGGING_START", () -> device.dmaLoggingSupported());
            } catch (VfioException e) {
                run.dmaLogging = false;
            }
        } else if (!caps.equals(run.capabilities)) {
            findings.violation(Rule.OPEN, "instance " + name + " reports " + caps + ", the first instance reported "
                    + run.capabilities);
        }
        VfioDeviceState now = get("on opening " + name);
        expected = now == null ? ERROR : now;
        if (now == RUNNING) {
            findings.pass(Rule.OPEN);
        } else {
            findings.violation(Rule.OPEN, "a newly opened " + name + " is in " + (now == null ? "an unreadable state" : now)
                    + ", not RUNNING");
            returnToRunning(null, null);
        }
    }

    String name() {
        return device.name();
    }

    CheckRun run() {
        return run;
    }

    Findings findings() {
        return findings;
    }

    VfioDevice device() {
        return device;
    }

    CheckedDevice instance() {
        return instance;
    }

    /** Whether this instance changes only through {@link #advance} and shows a state digest. */
    boolean replayable() {
        return replayable;
    }

    boolean supports(VfioDeviceState s) {
        return VfioMigrationFsm.supported(s, caps);
    }

    /** Native scratch memory of {@link #IO_CHUNK} bytes. */
    long scratch() {
        return scratch.address();
    }

    // ------------------------------------------------------------------------------------------
    // State calls

    /** GET MIG_DEVICE_STATE; null (and a readback violation) when GET itself fails. */
    VfioDeviceState get(String when) throws CheckAbortedException {
        try {
            return run.call("GET MIG_DEVICE_STATE", device::deviceState);
        } catch (VfioException e) {
            findings.violation(Rule.READBACK, "GET MIG_DEVICE_STATE " + when + " failed: " + e.getMessage());
            return null;
        }
    }

    /** True if the single arc {@code from→to} is one of the four that open a data session. */
    static boolean opensSession(VfioDeviceState from, VfioDeviceState to) {
        return (from == RUNNING && to == PRE_COPY) || (from == RUNNING_P2P && to == PRE_COPY_P2P)
                || (from == STOP && to == STOP_COPY) || (from == STOP && to == RESUMING);
    }

    static boolean saving(VfioDeviceState s) {
        return s == PRE_COPY || s == PRE_COPY_P2P || s == STOP_COPY;
    }

    /**
     * One SET of a request the arc table allows from {@link #expected}, with the checks every
     * SET owes. A failure is returned, not judged: the caller knows whether it was expected.
     */
    SetOutcome trySet(VfioDeviceState to) throws CheckAbortedException {
        VfioDeviceState from = expected;
        List<VfioDeviceState> path = VfioMigrationFsm.path(from, to, caps);
        VfioDeviceState beforeLast = path.size() >= 2 ? path.get(path.size() - 2) : from;
        boolean opens = opensSession(beforeLast, to);
        String arc = from + "\u2192" + to;
        VfioDataFd fd;
        try {
            fd = run.call("SET MIG_DEVICE_STATE " + arc, () -> device.setDeviceState(to));
        } catch (VfioException e) {
            long nanos = run.watchdog.lastNanos();
            VfioDeviceState now = get("after the failed SET " + arc);
            boolean onPath = now != null && (now == from || now == ERROR || path.contains(now));
            findings.expect(Rule.FAILED_SET, onPath, "after " + arc + " failed (" + Errno.name(e.errno()) + "), GET"
                    + " answered " + (now == null ? "an error" : now.toString()) + ", which is neither " + from
                    + ", ERROR nor on the path " + path);
            expected = now == null ? ERROR : now;
            return new SetOutcome(from, to, null, e, nanos);
        }
        long nanos = run.watchdog.lastNanos();
        expected = to;
        VfioDeviceState now = get("after " + arc);
        if (now != null) {
            findings.expect(Rule.READBACK, now == to, arc + ": GET MIG_DEVICE_STATE answered " + now
                    + " after the SET succeeded");
        }
        if (opens) {
            findings.expect(Rule.SESSION_FD, fd != null, arc + " returned no data fd, though its last arc "
                    + beforeLast + "\u2192" + to + " opens a session");
        } else if (fd != null) {
            findings.violation(Rule.SESSION_FD, arc + " returned a data fd, though no arc on its path "
                    + path + " opens a session");
            run.closeQuietly("close(data_fd)", fd);
            fd = null;
        } else {
            findings.pass(Rule.SESSION_FD);
        }
        return new SetOutcome(from, to, fd, null, nanos);
    }

    /** {@link #trySet} of a request that must succeed: a failure violates {@link Rule#ARCS}. */
    SetOutcome set(VfioDeviceState to) throws CheckAbortedException {
        SetOutcome out = trySet(to);
        findings.expect(Rule.ARCS, out.ok(), out.ok() ? "" : out.arc() + " failed: " + message(out.error()));
        return out;
    }

    /**
     * A request the arc table refuses from {@link #expected}: it must fail with EINVAL and leave
     * the state as it was ({@link Rule#REFUSE}).
     */
    void refuse(VfioDeviceState to) throws CheckAbortedException {
        VfioDeviceState from = expected;
        String reason = VfioMigrationFsm.refusal(from, to, caps).orElse("refused");
        String arc = from + "\u2192" + to;
        VfioDeviceState before = get("before the refused request " + arc);
        try {
            VfioDataFd fd = run.call("SET MIG_DEVICE_STATE " + arc, () -> device.setDeviceState(to));
            findings.violation(Rule.REFUSE, arc + " succeeded, but the arc table refuses it (" + reason + ")");
            run.closeQuietly("close(data_fd)", fd);
            VfioDeviceState now = get("after " + arc);
            expected = now == null ? ERROR : now;
            return;
        } catch (VfioException e) {
            VfioDeviceState after = get("after the refused request " + arc);
            if (e.errno() != Errno.EINVAL) {
                findings.violation(Rule.REFUSE, arc + " failed with " + Errno.name(e.errno()) + " instead of EINVAL");
            } else if (before != null && after != before) {
                findings.violation(Rule.REFUSE, arc + " was refused, but the state changed from " + before + " to " + after);
            } else {
                findings.pass(Rule.REFUSE);
            }
            if (after != null && after != before) {
                expected = after;
            }
        }
    }

    /**
     * VFIO_DEVICE_RESET; the device must then be RUNNING ({@link Rule#RESET}). Returns whether it
     * is.
     */
    boolean reset() throws CheckAbortedException {
        VfioDeviceState before = expected;
        try {
            run.call("VFIO_DEVICE_RESET in " + before, () -> {
                device.reset();
                return null;
            });
        } catch (VfioException e) {
            findings.violation(Rule.RESET, "VFIO_DEVICE_RESET in " + before + " failed: " + message(e));
            VfioDeviceState now = get("after the failed reset");
            expected = now == null ? ERROR : now;
            return false;
        }
        VfioDeviceState now = get("after VFIO_DEVICE_RESET");
        findings.expect(Rule.RESET, now == RUNNING, "after VFIO_DEVICE_RESET in " + before + ", GET MIG_DEVICE_STATE"
                + " answered " + (now == null ? "an error" : now.toString()) + " instead of RUNNING");
        expected = now == null ? RUNNING : now;
        if (before == ERROR && now == RUNNING) {
            run.sawError = true;
        }
        return now == RUNNING;
    }

    /**
     * Brings the device back to RUNNING the gentlest way that works: finishing a resume with the
     * device's own saved state ({@code resumeFd}, {@code image}) when it is known to be accepted,
     * a SET RUNNING otherwise, a reset if that fails, and a fresh instance if even the reset fails.
     */
    void returnToRunning(VfioDataFd resumeFd, StateImage image) throws CheckAbortedException {
        if (expected == RUNNING) {
            return;
        }
        if (expected == RESUMING && resumeFd != null && image != null && Boolean.TRUE.equals(run.ownStateAccepted)) {
            try {
                if (writeAll(resumeFd, image.address(), image.size()) == image.size() && set(RUNNING).ok()) {
                    return;
                }
            } catch (VfioException e) {
                findings.violation(Rule.ARCS, "writing " + image.size() + " bytes of saved state into RESUMING failed: "
                        + message(e));
            }
        }
        if (expected != ERROR && expected != RESUMING && supports(expected) && set(RUNNING).ok()) {
            return;
        }
        if (reset() && expected == RUNNING) {
            return;
        }
        reopen();
    }

    /** Replaces the instance with a fresh one (after a failed reset). */
    void reopen() throws CheckAbortedException {
        run.closeQuietly("close " + device.name(), instance);
        instance = null;
        device = null;
        CheckedDevice opened;
        try {
            opened = replayable ? run.call("open " + target.description(), target::openReplayable).orElseThrow()
                    : run.call("open " + target.description(), target::open);
        } catch (VfioException e) {
            findings.violation(Rule.OPEN, "opening a fresh instance of " + target.description() + " failed: "
                    + e.getMessage());
            throw new CheckAbortedException("the check stopped: no fresh instance of " + target.description()
                    + " opens after the last one could not be reset");
        }
        attach(opened);
    }

    // ------------------------------------------------------------------------------------------
    // Data fd calls

    long read(VfioDataFd fd, long address, long length, String state) throws VfioException, CheckAbortedException {
        return run.call("read(data_fd) in " + state, () -> fd.read(address, length));
    }

    PrecopyInfo precopyInfo(VfioDataFd fd, String state) throws VfioException, CheckAbortedException {
        return run.call("VFIO_MIG_GET_PRECOPY_INFO in " + state, fd::precopyInfo);
    }

    /** Writes {@code length} bytes in chunks; returns how many the device took before it stopped taking any. */
    long writeAll(VfioDataFd fd, long address, long length) throws VfioException, CheckAbortedException {
        long done = 0;
        int idle = 0;
        while (done < length) {
            long off = done;
            long n = run.call("write(data_fd) in RESUMING",
                    () -> fd.write(address + off, Math.min(IO_CHUNK, length - off)));
            if (n <= 0) {
                if (++idle >= 3) {
                    return done;
                }
                continue;
            }
            idle = 0;
            done += n;
        }
        return done;
    }

    /** After {@code after} ended the session of {@code fd}, it must fail with ENODEV. */
    void expectDead(VfioDataFd fd, boolean resuming, String after) throws CheckAbortedException {
        String what = resuming ? "a write to" : "a read of";
        try {
            long n = resuming ? run.call("write(data_fd) after " + after, () -> fd.write(scratch.address(), 1))
                    : run.call("read(data_fd) after " + after, () -> fd.read(scratch.address(), 4096));
            findings.violation(Rule.SESSION_FD, what + " the data fd after " + after + " returned " + describeRead(n)
                    + " instead of failing with ENODEV");
        } catch (VfioException e) {
            findings.expect(Rule.SESSION_FD, e.errno() == Errno.ENODEV, what + " the data fd after " + after
                    + " failed with " + Errno.name(e.errno()) + " instead of ENODEV");
        }
    }

    /** After {@code after}, a move inside the saving group, {@code fd} must still read. */
    void expectAlive(VfioDataFd fd, String after) throws CheckAbortedException {
        try {
            run.call("read(data_fd) after " + after, () -> fd.read(scratch.address(), 4096));
            findings.pass(Rule.SESSION_FD);
        } catch (VfioException e) {
            if (e.errno() == Errno.ENODEV) {
                findings.violation(Rule.SESSION_FD, "the data fd stopped working (ENODEV) after " + after
                        + ", though the saving session goes on");
            } else {
                findings.violation(Rule.READ, "a read after " + after + " failed: " + message(e));
            }
        }
    }

    void closeFd(VfioDataFd fd) {
        run.closeQuietly("close(data_fd)", fd);
    }

    // ------------------------------------------------------------------------------------------
    // Workload hooks

    /** Runs the instance's workload; false when it has none. */
    boolean advance(int steps) throws CheckAbortedException {
        try {
            return run.call("advance " + steps + " steps", () -> instance.advance(steps));
        } catch (VfioException e) {
            throw new IllegalStateException(e);
        }
    }

    OptionalLong digest() throws CheckAbortedException {
        try {
            return run.call("state digest", () -> instance.stateDigest());
        } catch (VfioException e) {
            throw new IllegalStateException(e);
        }
    }

    static String describeRead(long n) {
        if (n == VfioDataFd.NO_DATA) {
            return "-1/ENOMSG";
        }
        if (n == 0) {
            return "0 (end of stream)";
        }
        return n + " bytes";
    }

    /** A device error for evidence lines: the message, which names the operation and errno. */
    static String message(VfioException e) {
        return e.getMessage();
    }

    @Override
    public void close() {
        if (instance != null) {
            run.closeQuietly("close " + device.name(), instance);
            instance = null;
        }
        scratch.close();
    }
}
