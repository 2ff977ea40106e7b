package dev.ferry.vfio.check;

import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.fsm.VfioArc;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static dev.ferry.vfio.check.CheckReport.Status.NOT_APPLICABLE;
import static dev.ferry.vfio.check.CheckReport.Status.NOT_EXERCISED;
import static dev.ferry.vfio.check.CheckReport.Status.PASS;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The check passes healthy emulated VFs of every capability set, and really walked them: every
 * legal arc of the set (written out here by hand from the arc table) is in the timing table with
 * one latency per repetition and in the devices' own state history, and the rules that apply
 * were each exercised.
 */
@Timeout(60)
class VfioCheckHealthyTest {
    private static final int REPEAT = 3;
    /** Healthy tests do not judge latency: a loaded build machine must not fail them. */
    private static final VfioCheck.Options OPTIONS = VfioCheck.Options.defaults().withRepeat(REPEAT)
            .withArcBudget(Duration.ofSeconds(30));

    private static Set<VfioArc> arcs(VfioDeviceState... fromTo) {
        Set<VfioArc> s = new HashSet<>();
        for (int i = 0; i < fromTo.length; i += 2) {
            s.add(new VfioArc(fromTo[i], fromTo[i + 1]));
        }
        return s;
    }

    /** The single arcs of each capability set, read off the kernel's table with the skip rule. */
    private static Set<VfioArc> legalArcs(String caps) {
        return switch (caps) {
            case "stop-copy" -> arcs(STOP, RUNNING, STOP, STOP_COPY, STOP, RESUMING, RUNNING, STOP,
                    STOP_COPY, STOP, RESUMING, STOP);
            case "stop-copy,p2p" -> arcs(STOP, STOP_COPY, STOP, RESUMING, STOP, RUNNING_P2P, RUNNING, RUNNING_P2P,
                    STOP_COPY, STOP, RESUMING, STOP, RUNNING_P2P, STOP, RUNNING_P2P, RUNNING);
            case "stop-copy,pre-copy" -> arcs(STOP, RUNNING, STOP, STOP_COPY, STOP, RESUMING, RUNNING, STOP,
                    RUNNING, PRE_COPY, STOP_COPY, STOP, RESUMING, STOP, PRE_COPY, RUNNING, PRE_COPY, STOP_COPY);
            case "stop-copy,p2p,pre-copy" -> arcs(STOP, STOP_COPY, STOP, RESUMING, STOP, RUNNING_P2P,
                    RUNNING, RUNNING_P2P, RUNNING, PRE_COPY, STOP_COPY, STOP, RESUMING, STOP,
                    RUNNING_P2P, STOP, RUNNING_P2P, RUNNING, RUNNING_P2P, PRE_COPY_P2P,
                    PRE_COPY, RUNNING, PRE_COPY, PRE_COPY_P2P,
                    PRE_COPY_P2P, RUNNING_P2P, PRE_COPY_P2P, STOP_COPY, PRE_COPY_P2P, PRE_COPY);
            default -> throw new IllegalArgumentException(caps);
        };
    }

    @ParameterizedTest
    @ValueSource(strings = {"stop-copy", "stop-copy,p2p", "stop-copy,pre-copy", "stop-copy,p2p,pre-copy"})
    void healthyDevicePassesAndEveryArcWasWalked(String caps) {
        List<EmulatedVfioDevice> opened = Collections.synchronizedList(new ArrayList<>());
        EmulatedVfSpec spec = EmulatedVfSpec.parse(caps + ",state=256K");
        EmulatedCheckTarget target = new EmulatedCheckTarget(spec, (name, s, dma) -> {
            EmulatedVfioDevice d = new EmulatedVfioDevice(name, s, dma);
            opened.add(d);
            return d;
        }, "emulated:" + caps);

        CheckReport report = VfioCheck.run(target, OPTIONS);

        assertTrue(report.passed(), () -> String.join("\n", report.violationLines()) + " aborted: " + report.aborted());
        assertNull(report.aborted());
        assertEquals(spec.capabilities().toString(), report.migration());

        Set<VfioArc> expected = legalArcs(caps);
        Set<VfioArc> timed = report.arcs().stream().map(CheckReport.ArcTiming::arc).collect(Collectors.toSet());
        assertEquals(expected, timed, "arcs in the timing table");
        for (CheckReport.ArcTiming t : report.arcs()) {
            assertEquals(REPEAT, t.nanos().size(), () -> t.arc() + " timed " + t.nanos().size() + " times");
            assertTrue(t.min() > 0 && t.min() <= t.median() && t.median() <= t.max(), t::toString);
        }

        // the devices themselves went through every arc (their history, not the check's word)
        Set<VfioArc> walked = new HashSet<>();
        for (EmulatedVfioDevice d : opened) {
            List<VfioDeviceState> h = d.stateHistory();
            for (int i = 1; i < h.size(); i++) {
                if (h.get(i - 1) != h.get(i)) {
                    walked.add(new VfioArc(h.get(i - 1), h.get(i)));
                }
            }
        }
        assertTrue(walked.containsAll(expected), () -> "not walked: " + difference(expected, walked));
        assertTrue(opened.stream().mapToInt(EmulatedVfioDevice::resets).sum() >= expected.stream()
                .map(VfioArc::from).distinct().count(), "a reset from every state");

        for (Rule r : List.of(Rule.OPEN, Rule.ARCS, Rule.READBACK, Rule.REFUSE, Rule.SESSION_FD, Rule.READ,
                Rule.EOF, Rule.RESUME_VALIDATES, Rule.LOAD, Rule.RESET, Rule.ARC_BUDGET, Rule.NO_HANG)) {
            assertEquals(PASS, report.rule(r).status(), () -> r + ": " + report.rule(r));
        }
        boolean precopy = caps.contains("pre-copy");
        assertEquals(precopy ? PASS : NOT_APPLICABLE, report.rule(Rule.ENOMSG).status());
        assertEquals(precopy ? PASS : NOT_APPLICABLE, report.rule(Rule.PRECOPY_INFO).status());
        // the base VF never DMAs: the rule says so instead of passing
        assertEquals(NOT_EXERCISED, report.rule(Rule.DMA_LOG).status());
        assertTrue(report.rule(Rule.DMA_LOG).notes().get(0).contains("wrote no page"), report.rule(Rule.DMA_LOG)::toString);

        CheckReport.Sizes sizes = report.sizes();
        assertEquals(sizes.stopCopyEstimate(), sizes.stopCopyBytes(), "the emulated VF's estimate is exact");
        assertTrue(sizes.stopCopyBytes() > 256 << 10, "the whole state was read: " + sizes);
        if (precopy) {
            assertTrue(sizes.precopyInitialBytes() > 256 << 10, sizes::toString);
            assertTrue(sizes.precopyBytes() >= sizes.precopyInitialBytes(), sizes::toString);
        } else {
            assertEquals(-1, sizes.precopyInitialBytes());
        }
    }

    @Test
    void dmaLoggingIsExercisedOnADeviceThatWrites() {
        EmulatedCheckTarget target = new EmulatedCheckTarget(EmulatedVfSpec.parse("state=256K"), DmaWritingVf::new,
                "emulated:dma-writing");
        CheckReport report = VfioCheck.run(target, OPTIONS);
        assertTrue(report.passed(), () -> String.join("\n", report.violationLines()));
        CheckReport.RuleResult dma = report.rule(Rule.DMA_LOG);
        assertEquals(PASS, dma.status(), dma::toString);
        long pages = DmaWritingVf.pagesWritten(OPTIONS.workloadSteps(), EmulatedCheckTarget.GUEST_MEMORY / 4096);
        assertTrue(dma.notes().contains("the device changed " + pages + " page(s) while logging; the report named "
                + pages), dma::toString);
    }

    @Test
    void aDeviceWithoutDmaLoggingHasTheRuleNotApplicable() {
        CheckReport report = VfioCheck.run(new EmulatedCheckTarget(EmulatedVfSpec.parse("stop-copy,state=64K,no-dma-log")),
                OPTIONS);
        assertTrue(report.passed(), () -> String.join("\n", report.violationLines()));
        assertEquals(NOT_APPLICABLE, report.rule(Rule.DMA_LOG).status());
        assertTrue(!report.dmaLogging());
    }

    @Test
    void defaultDeviceWithChurningStatePassesWithDefaultOptions() {
        // default spec: all three capabilities, 4 MiB of state changed by the churn thread while running
        CheckReport report = VfioCheck.run(new EmulatedCheckTarget(EmulatedVfSpec.defaults()),
                VfioCheck.Options.defaults().withArcBudget(Duration.ofSeconds(30)));
        assertTrue(report.passed(), () -> String.join("\n", report.violationLines()));
        assertEquals(15, report.arcs().size());
    }

    @Test
    void leavesNoFdsBehind() {
        EmulatedCheckTarget target = new EmulatedCheckTarget(EmulatedVfSpec.parse("state=64K"));
        VfioCheck.run(target, OPTIONS.withRepeat(1));
        FdLeakCheck leaks = FdLeakCheck.start();
        CheckReport report = VfioCheck.run(target, OPTIONS.withRepeat(1));
        assertTrue(report.passed());
        leaks.assertNoLeaks();
    }

    private static Set<VfioArc> difference(Set<VfioArc> a, Set<VfioArc> b) {
        Set<VfioArc> d = new HashSet<>(a);
        d.removeAll(b);
        return d;
    }
}
