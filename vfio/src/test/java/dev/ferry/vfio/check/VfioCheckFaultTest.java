package dev.ferry.vfio.check;

import dev.ferry.core.sys.Errno;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.FaultKind;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static dev.ferry.vfio.check.CheckReport.Status.NOT_EXERCISED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The check fails devices with each injected fault and names the rule the fault breaks — that
 * rule and no other, so a report points a vendor at the one thing to fix. The evidence must say
 * what happened, not only which rule.
 */
@Timeout(60)
class VfioCheckFaultTest {
    private static final VfioCheck.Options OPTIONS = VfioCheck.Options.defaults().withRepeat(2)
            .withArcBudget(Duration.ofSeconds(30));

    /** flags (state kept small), the one rule broken, a fragment of its evidence. */
    static Stream<Arguments> faults() {
        return Stream.of(
                // failures a device may have; the check still names them
                Arguments.of("fault=fail-set:STOP_COPY", Rule.ARCS, "STOP->STOP_COPY: EIO"),
                Arguments.of("stop-copy,fault=fail-set:RESUMING", Rule.ARCS, "STOP->RESUMING: EIO"),
                Arguments.of("fault=error-set:STOP", Rule.ARCS, "the device is in ERROR"),
                Arguments.of("stop-copy,p2p,fault=error-set:RUNNING_P2P", Rule.ARCS, "RUNNING->RUNNING_P2P: EIO"),
                Arguments.of("fault=fail-read", Rule.READ, "a STOP_COPY read after 0 bytes failed"),
                Arguments.of("stop-copy,fault=fail-read", Rule.READ, "a STOP_COPY read after 0 bytes failed"),
                Arguments.of("fault=corrupt-data", Rule.LOAD, "digest mismatch (corrupt data)"),
                Arguments.of("stop-copy,fault=corrupt-data", Rule.LOAD, "digest mismatch (corrupt data)"),
                Arguments.of("fault=reject-load", Rule.LOAD, "RESUMING\u2192STOP on vf1 refused"),
                Arguments.of("fault=fail-reset", Rule.RESET, "VFIO_DEVICE_RESET in"),
                // uAPI rule violations
                Arguments.of("fault=no-eof", Rule.EOF, "returned -1/ENOMSG instead of 0 (end of stream)"),
                Arguments.of("stop-copy,fault=no-eof", Rule.EOF, "returned -1/ENOMSG instead of 0 (end of stream)"),
                Arguments.of("fault=eof-in-precopy", Rule.ENOMSG, "an idle PRE_COPY read returned 0"),
                Arguments.of("stop-copy,pre-copy,fault=eof-in-precopy", Rule.ENOMSG, "an idle PRE_COPY read returned 0"),
                Arguments.of("fault=bad-readback", Rule.READBACK, "RUNNING\u2192PRE_COPY: GET MIG_DEVICE_STATE answered RUNNING"),
                Arguments.of("stop-copy,fault=bad-readback", Rule.READBACK, "GET MIG_DEVICE_STATE answered RUNNING"),
                Arguments.of("fault=accept-garbage", Rule.RESUME_VALIDATES, "accepted 4096 bytes of garbage"),
                Arguments.of("stop-copy,fault=accept-garbage", Rule.RESUME_VALIDATES, "bytes of a saved state"),
                Arguments.of("fault=stale-fd", Rule.SESSION_FD, "after STOP_COPY\u2192STOP returned -1/ENOMSG instead of failing with ENODEV"),
                Arguments.of("stop-copy,fault=stale-fd", Rule.SESSION_FD, "instead of failing with ENODEV"),
                Arguments.of("fault=stuck-initial", Rule.PRECOPY_INFO, "(it never counted down)"),
                Arguments.of("fault=lose-state", Rule.LOAD, "state digest"),
                Arguments.of("stop-copy,fault=lose-state", Rule.LOAD, "state digest"));
    }

    @ParameterizedTest(name = "{0} breaks {1}")
    @MethodSource("faults")
    void faultIsNamedByItsRule(String flags, Rule broken, String evidence) {
        CheckReport report = VfioCheck.run(new EmulatedCheckTarget(EmulatedVfSpec.parse(flags + ",state=256K")), OPTIONS);
        assertBroken(report, broken, evidence);
        assertNull(report.aborted(), "a fault that does not hang lets the check finish");
    }

    @Test
    void everyFaultKindIsCovered() {
        Set<FaultKind> covered = faults().map(a -> (String) a.get()[0])
                .map(f -> EmulatedVfSpec.parse(f).faults().get(0).kind()).collect(Collectors.toCollection(
                        () -> EnumSet.noneOf(FaultKind.class)));
        covered.add(FaultKind.SLOW_SET);      // slowArcBreaksTheBudget, hungArcStopsTheCheck
        covered.add(FaultKind.LOG_NO_CLEAR);  // logNoClearNeedsADeviceThatWrites
        assertEquals(EnumSet.allOf(FaultKind.class), covered);
    }

    @Test
    void errorStateIsLeftByReset() {
        CheckReport report = VfioCheck.run(new EmulatedCheckTarget(EmulatedVfSpec.parse("fault=error-set:STOP,state=64K")),
                OPTIONS);
        assertEquals(CheckReport.Status.PASS, report.rule(Rule.RESET).status());
        assertTrue(report.rule(Rule.RESET).notes().stream().anyMatch(n -> n.contains("and from ERROR")),
                report.rule(Rule.RESET)::toString);
    }

    @Test
    void slowArcBreaksTheBudget() {
        CheckReport report = VfioCheck.run(new EmulatedCheckTarget(
                EmulatedVfSpec.parse("stop-copy,fault=slow-set:STOP_COPY:150,state=64K")),
                OPTIONS.withArcBudget(Duration.ofMillis(50)));
        assertBroken(report, Rule.ARC_BUDGET, "STOP\u2192STOP_COPY took a median");
        // the other arcs are within budget: only the one slowed down is named
        assertEquals(1, report.rule(Rule.ARC_BUDGET).violations(), report.rule(Rule.ARC_BUDGET)::toString);
        assertTrue(report.timing(new dev.ferry.vfio.fsm.VfioArc(VfioDeviceState.STOP, VfioDeviceState.STOP_COPY))
                .orElseThrow().min() >= 150_000_000L);
    }

    @Test
    void hungArcStopsTheCheck() {
        CheckReport report = VfioCheck.run(new EmulatedCheckTarget(
                EmulatedVfSpec.parse("stop-copy,fault=slow-set:STOP_COPY:20000,state=64K")),
                OPTIONS.withCallTimeout(Duration.ofMillis(300)));
        assertBroken(report, Rule.NO_HANG, "SET MIG_DEVICE_STATE RUNNING\u2192STOP_COPY did not return within 300 ms");
        assertNotNull(report.aborted());
        assertFalse(report.passed());
        assertEquals(NOT_EXERCISED, report.rule(Rule.EOF).status());
        assertTrue(report.rule(Rule.EOF).notes().get(0).startsWith("not reached: the check stopped"));
    }

    @Test
    void logNoClearNeedsADeviceThatWrites() {
        CheckReport writes = VfioCheck.run(new EmulatedCheckTarget(EmulatedVfSpec.parse("fault=log-no-clear,state=64K"),
                DmaWritingVf::new, "dma-writing"), OPTIONS);
        assertBroken(writes, Rule.DMA_LOG, "the report did not clear the log");

        // the reference device `ferry vfio check --device emulated` uses is the busy NIC: it is caught there
        CheckReport nic = VfioCheck.run(CheckTargets.forDevice("emulated:fault=log-no-clear,state=64K"), OPTIONS);
        assertBroken(nic, Rule.DMA_LOG, "the report did not clear the log");
        CheckReport healthyNic = VfioCheck.run(CheckTargets.forDevice("emulated:state=64K"), OPTIONS);
        assertTrue(healthyNic.passed(), healthyNic.toString());
        assertEquals(CheckReport.Status.PASS, healthyNic.rule(Rule.DMA_LOG).status());

        // the base VF never DMAs, so the fault cannot show: the rule says it was not exercised
        CheckReport silent = VfioCheck.run(new EmulatedCheckTarget(EmulatedVfSpec.parse("fault=log-no-clear,state=64K")),
                OPTIONS);
        assertTrue(silent.passed());
        assertEquals(NOT_EXERCISED, silent.rule(Rule.DMA_LOG).status());
    }

    @Test
    void deviceWithoutMigrationStopsTheCheckAtOpen() {
        CheckReport report = VfioCheck.run(new EmulatedCheckTarget(EmulatedVfSpec.parse("no-migration,state=64K")), OPTIONS);
        assertBroken(report, Rule.OPEN, "GET MIGRATION on vf0 failed");
        assertTrue(report.aborted().contains("reports no migration support"), report.aborted());
        assertNull(report.migration());
    }

    // ---- rules no injected fault breaks: wrapped devices break them ----

    @Test
    void requestForErrorThatSucceedsBreaksRefuse() {
        CheckTarget t = ForwardingVfioDevice.target(EmulatedVfSpec.parse("stop-copy,state=64K"),
                d -> new ForwardingVfioDevice(d) {
                    @Override
                    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
                        return target == VfioDeviceState.ERROR ? null : super.setDeviceState(target);
                    }
                });
        assertBroken(VfioCheck.run(t, OPTIONS), Rule.REFUSE, "RUNNING\u2192ERROR succeeded, but the arc table refuses it");
    }

    @Test
    void refusalWithTheWrongErrnoBreaksRefuse() {
        CheckTarget t = ForwardingVfioDevice.target(EmulatedVfSpec.parse("stop-copy,p2p,state=64K"),
                d -> new ForwardingVfioDevice(d) {
                    @Override
                    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
                        if (target == VfioDeviceState.PRE_COPY) {
                            throw new VfioException("SET MIG_DEVICE_STATE", Errno.EIO, "unsupported");
                        }
                        return super.setDeviceState(target);
                    }
                });
        assertBroken(VfioCheck.run(t, OPTIONS), Rule.REFUSE, "\u2192PRE_COPY failed with EIO instead of EINVAL");
    }

    @Test
    void failureThatLeavesTheDeviceOffItsPathBreaksFailedSet() {
        // STOP->STOP_COPY fails (EIO) and the device then claims RESUMING, which no path from RUNNING to
        // STOP_COPY passes
        CheckTarget t = ForwardingVfioDevice.target(EmulatedVfSpec.parse("stop-copy,fault=fail-set:STOP_COPY,state=64K"),
                d -> new ForwardingVfioDevice(d) {
                    @Override
                    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
                        try {
                            return super.setDeviceState(target);
                        } catch (VfioException e) {
                            if (target == VfioDeviceState.STOP_COPY && delegate.deviceState() == VfioDeviceState.STOP) {
                                delegate.setDeviceState(VfioDeviceState.RESUMING).close();
                            }
                            throw e;
                        }
                    }
                });
        CheckReport report = VfioCheck.run(t, OPTIONS);
        assertEquals(List.of(Rule.ARCS, Rule.FAILED_SET), report.violatedRules(), () -> lines(report));
        assertTrue(lines(report).contains("GET answered RESUMING, which is neither RUNNING, ERROR nor on the path"),
                () -> lines(report));
    }

    @Test
    void deviceThatOpensInStopBreaksOpen() {
        CheckTarget t = ForwardingVfioDevice.target(EmulatedVfSpec.parse("stop-copy,state=64K"), d -> {
            try {
                d.setDeviceState(VfioDeviceState.STOP);
            } catch (VfioException e) {
                throw new AssertionError(e);
            }
            return new ForwardingVfioDevice(d);
        });
        assertBroken(VfioCheck.run(t, OPTIONS), Rule.OPEN, "a newly opened vf0 is in STOP, not RUNNING");
    }

    @Test
    void flagsWithoutStopCopyStopTheCheck() {
        CheckTarget t = ForwardingVfioDevice.target(EmulatedVfSpec.parse("state=64K"), d -> new ForwardingVfioDevice(d) {
            @Override
            public MigCapabilities migrationFlags() {
                return new MigCapabilities(MigCapabilities.P2P | MigCapabilities.PRE_COPY);
            }
        });
        CheckReport report = VfioCheck.run(t, OPTIONS);
        assertBroken(report, Rule.OPEN, "reports {P2P|PRE_COPY} without STOP_COPY");
        assertNotNull(report.aborted());
    }

    @Test
    void resumeWithoutADataFdBreaksSessionFd() {
        CheckTarget t = ForwardingVfioDevice.target(EmulatedVfSpec.parse("stop-copy,state=64K"),
                d -> new ForwardingVfioDevice(d) {
                    @Override
                    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
                        VfioDataFd fd = super.setDeviceState(target);
                        if (target == VfioDeviceState.RESUMING && fd != null) {
                            fd.close();
                            return null;
                        }
                        return fd;
                    }
                });
        assertBroken(VfioCheck.run(t, OPTIONS), Rule.SESSION_FD, "RUNNING\u2192RESUMING returned no data fd, though its"
                + " last arc STOP\u2192RESUMING opens a session");
    }

    @Test
    void unexpectedExceptionFromTheDeviceStopsTheCheckWithAReason() {
        CheckTarget t = ForwardingVfioDevice.target(EmulatedVfSpec.parse("stop-copy,state=64K"),
                d -> new ForwardingVfioDevice(d) {
                    @Override
                    public long stopCopyLength() {
                        throw new IllegalStateException("driver bug");
                    }
                });
        CheckReport report = VfioCheck.run(t, OPTIONS);
        assertFalse(report.passed());
        assertTrue(report.aborted().contains("IllegalStateException from the device: driver bug"), report.aborted());
    }

    private static void assertBroken(CheckReport report, Rule broken, String evidence) {
        assertFalse(report.passed());
        assertEquals(List.of(broken), report.violatedRules(), () -> lines(report));
        assertTrue(report.violationLines().stream().anyMatch(l -> l.startsWith("rule " + broken.id() + " violated: ")
                && l.contains(evidence)), () -> "no '" + evidence + "' in\n" + lines(report));
    }

    private static String lines(CheckReport report) {
        return String.join("\n", report.violationLines());
    }
}
