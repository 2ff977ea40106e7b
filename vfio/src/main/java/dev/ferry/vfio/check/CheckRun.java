package dev.ferry.vfio.check;

import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.fsm.VfioArc;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What one run of the check shares between its phases: the options, the findings, the watchdog
 * every device call goes through, the arc timings, and what earlier phases learnt (the device's
 * flags, whether it accepts its own state). Used by the check's thread only.
 */
final class CheckRun implements AutoCloseable {
    final VfioCheck.Options options;
    final Findings findings = new Findings();
    final CallWatchdog watchdog;
    final Map<VfioArc, List<Long>> arcNanos = new LinkedHashMap<>();

    /** Name and flags of the first instance opened. */
    String deviceName;
    MigCapabilities capabilities;
    boolean dmaLogging;

    /**
     * Whether a fresh instance accepted state another instance saved: {@code null} until the
     * load test knew. The walk only takes RESUMING→STOP with written data when it is true.
     */
    Boolean ownStateAccepted;

    /** Whether a reset from ERROR was seen (ERROR is reached only through a failing device). */
    boolean sawError;

    // sizes, from the walk instance's saves
    long dataSizeRunning = -1;
    Saving.Result stopCopySave;
    Saving.Result preCopySave;

    CheckRun(VfioCheck.Options options) {
        this.options = options;
        this.watchdog = new CallWatchdog(options.callTimeout(), "vfio-check-call");
    }

    /**
     * Runs a device call under the watchdog. A hang is recorded as a {@link Rule#NO_HANG}
     * violation and stops the check.
     */
    <T> T call(String what, CallWatchdog.DeviceCall<T> call) throws dev.ferry.vfio.device.VfioException,
            CheckAbortedException {
        try {
            return watchdog.call(what, call);
        } catch (CallWatchdog.HungCallException e) {
            findings.violation(Rule.NO_HANG, e.getMessage());
            throw new CheckAbortedException("the check stopped: " + e.getMessage());
        }
    }

    /**
     * Closes {@code resource} (a data fd, an instance) under the watchdog without stopping the
     * check; once a call has hung, closes it on a daemon thread of its own, since the close may
     * wait for the stuck call.
     */
    void closeQuietly(String what, AutoCloseable resource) {
        if (resource == null) {
            return;
        }
        if (watchdog.hungCall() == null) {
            try {
                watchdog.call(what, () -> {
                    closeUnchecked(resource);
                    return null;
                });
                return;
            } catch (CallWatchdog.HungCallException e) {
                findings.violation(Rule.NO_HANG, e.getMessage());
            } catch (dev.ferry.vfio.device.VfioException e) {
                return;
            }
        }
        Thread t = new Thread(() -> closeUnchecked(resource), "vfio-check-close");
        t.setDaemon(true);
        t.start();
    }

    private static void closeUnchecked(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            // closing is best effort; the device's failure to close is not a uAPI rule
        }
    }

    void recordArc(VfioArc arc, long nanos) {
        arcNanos.computeIfAbsent(arc, a -> new ArrayList<>()).add(nanos);
    }

    List<CheckReport.ArcTiming> timings() {
        List<CheckReport.ArcTiming> out = new ArrayList<>();
        arcNanos.forEach((arc, n) -> out.add(new CheckReport.ArcTiming(arc, n)));
        return out;
    }

    CheckReport.Sizes sizes() {
        Saving.Result sc = stopCopySave;
        Saving.Result pc = preCopySave;
        return new CheckReport.Sizes(dataSizeRunning,
                sc == null ? -1 : sc.stopCopyEstimate, sc == null ? -1 : sc.stopCopyBytes,
                pc == null ? -1 : pc.precopyInitialBytes, pc == null ? -1 : pc.precopyBytes,
                pc == null ? -1 : pc.precopyMaxDirtyBytes,
                pc == null ? -1 : pc.stopCopyEstimate, pc == null ? -1 : pc.stopCopyBytes);
    }

    @Override
    public void close() {
        watchdog.close();
    }
}
