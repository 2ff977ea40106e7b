package dev.ferry.core.machine;

import dev.ferry.core.cpu.CpuEngine;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MachineTest {
    private final List<String> events = new ArrayList<>();
    private FakeCpus cpus;
    private Machine machine;

    /**
     * An engine whose vCPUs are only a flag, following the engine's rules: pause is idempotent and
     * returns with nothing running; resume starts them. Records into the shared event list.
     */
    private final class FakeCpus implements CpuEngine {
        boolean running;
        boolean closed;

        @Override
        public String name() {
            return "fake";
        }

        @Override
        public int vcpuCount() {
            return 2;
        }

        @Override
        public void resume() {
            if (closed) {
                throw new IllegalStateException("resume after close");
            }
            running = true;
            events.add("cpus:resume");
        }

        @Override
        public void pause() {
            if (running) {
                events.add("cpus:pause");
            }
            running = false;
        }

        @Override
        public void setThrottlePercentage(int percentage) {
        }

        @Override
        public int throttlePercentage() {
            return 0;
        }

        @Override
        public void close() {
            pause();
            closed = true;
            events.add("cpus:close");
        }
    }

    /** A handler that records both stages, with the run state it was told. */
    private final class Recording implements VmChangeStateHandler {
        final String name;
        String failPrepare;
        String failChange;

        Recording(String name) {
            this.name = name;
        }

        @Override
        public void prepare(boolean running, RunState state) throws VmStateChangeException {
            events.add("prepare:" + name + ":" + (running ? "run" : "stop") + ":" + state.qapiName());
            assertFalse(cpus.running, "vCPUs must not run while handlers run (" + name + ".prepare)");
            if (failPrepare != null) {
                throw new IllegalStateException(failPrepare);
            }
        }

        @Override
        public void onChange(boolean running, RunState state) throws VmStateChangeException {
            events.add("change:" + name + ":" + (running ? "run" : "stop") + ":" + state.qapiName());
            assertFalse(cpus.running, "vCPUs must not run while handlers run (" + name + ".onChange)");
            if (failChange != null) {
                throw new VmStateChangeException(failChange);
            }
        }
    }

    @BeforeEach
    void setUp() {
        cpus = new FakeCpus();
        machine = new Machine("vm0", GuestMemory.ofSize(64 * 1024), cpus, RunState.PRELAUNCH);
        machine.addRunStateListener((prev, cur) -> events.add("state:" + prev.qapiName() + "->" + cur.qapiName()));
    }

    @AfterEach
    void tearDown() {
        machine.close();
    }

    private Recording handler(String name, int priority) {
        Recording h = new Recording(name);
        machine.addVmChangeStateHandler(h, priority);
        return h;
    }

    private List<String> only(String prefix) {
        return events.stream().filter(e -> e.startsWith(prefix)).toList();
    }

    @Test
    void startRunsHandlersInAscendingPriorityThenResumes() throws Exception {
        handler("a", 10);
        handler("b", 0);
        handler("c", 20);
        handler("d", 10);
        machine.vmStart();
        assertEquals(List.of(
                "prepare:b:run:running", "prepare:a:run:running", "prepare:d:run:running", "prepare:c:run:running",
                "change:b:run:running", "change:a:run:running", "change:d:run:running", "change:c:run:running"),
                events.stream().filter(e -> e.startsWith("prepare") || e.startsWith("change")).toList());
        assertEquals("cpus:resume", events.get(events.size() - 1), "vCPUs resume after every handler: " + events);
        assertEquals(RunState.RUNNING, machine.runState());
        assertTrue(machine.isRunning());
    }

    @Test
    void stopPausesThenRunsHandlersInDescendingPriority() throws Exception {
        handler("a", 10);
        handler("b", 0);
        handler("c", 20);
        handler("d", 10);
        machine.vmStart();
        events.clear();
        machine.vmStop(RunState.FINISH_MIGRATE);
        assertEquals("cpus:pause", events.get(0), "vCPUs pause before any handler: " + events);
        // Equal priorities run in reverse registration order, as QEMU walks its list backwards on stop.
        assertEquals(List.of(
                "prepare:c:stop:finish-migrate", "prepare:d:stop:finish-migrate", "prepare:a:stop:finish-migrate",
                "prepare:b:stop:finish-migrate",
                "change:c:stop:finish-migrate", "change:d:stop:finish-migrate", "change:a:stop:finish-migrate",
                "change:b:stop:finish-migrate"),
                events.stream().filter(e -> e.startsWith("prepare") || e.startsWith("change")).toList());
        assertEquals(RunState.FINISH_MIGRATE, machine.runState());
        assertFalse(cpus.running);
    }

    @Test
    void failingHandlersDoNotStopTheOthersAndAreReportedTogether() throws Exception {
        Recording a = handler("a", 30);
        Recording b = handler("b", 20);
        handler("c", 10);
        machine.vmStart();
        events.clear();
        a.failChange = "a: STOP failed (EIO)";
        b.failPrepare = "b: cannot enter STOP_P2P";

        VmStateChangeException e = assertThrows(VmStateChangeException.class, () -> machine.vmStop(RunState.PAUSED));
        assertTrue(e.getMessage().contains("a: STOP failed (EIO)"), e.getMessage());
        assertTrue(e.getMessage().contains("b: cannot enter STOP_P2P"), e.getMessage());
        assertTrue(only("prepare:").containsAll(List.of("prepare:a:stop:paused", "prepare:c:stop:paused")), events.toString());
        assertTrue(only("change:").containsAll(List.of("change:b:stop:paused", "change:c:stop:paused")), events.toString());
        assertEquals(RunState.PAUSED, machine.runState(), "the VM is stopped regardless");
        assertFalse(cpus.running);
    }

    @Test
    void failingStartStillRunsTheVm() throws Exception {
        handler("a", 0).failChange = "a: RESUME failed";
        handler("b", 10);
        VmStateChangeException e = assertThrows(VmStateChangeException.class, machine::vmStart);
        assertTrue(e.getMessage().contains("a: RESUME failed"), e.getMessage());
        assertTrue(events.contains("change:b:run:running"));
        assertEquals(RunState.RUNNING, machine.runState());
        assertTrue(cpus.running);
    }

    /** A destination whose source takes the guest back: a failed start never runs it, the handlers hear the stop. */
    @Test
    void failingStartOrStayStoppedNeverRunsTheVm() throws Exception {
        handler("a", 0);
        handler("b", 10).failChange = "b: RESUMING->RUNNING failed (EINVAL)";
        machine.setRunState(RunState.INMIGRATE);
        var loop = machine.eventLoop(); // made paused, as the VM does not run
        events.clear();
        VmStateChangeException e = assertThrows(VmStateChangeException.class,
                () -> machine.vmStartOrStayStopped(RunState.INTERNAL_ERROR));
        // b fails the rollback's stop too (it fails every main stage), and says so.
        assertEquals("b: RESUMING->RUNNING failed (EINVAL); stopping again reported: b: RESUMING->RUNNING failed (EINVAL)",
                e.getMessage());
        assertEquals(List.of(
                "prepare:a:run:running", "prepare:b:run:running", "change:a:run:running", "change:b:run:running",
                "state:inmigrate->internal-error",
                "prepare:b:stop:internal-error", "prepare:a:stop:internal-error",
                "change:b:stop:internal-error", "change:a:stop:internal-error"), events);
        assertEquals(RunState.INTERNAL_ERROR, machine.runState());
        assertFalse(cpus.running);
        assertTrue(loop.isPaused(), "the device loop was never resumed");
    }

    @Test
    void startOrStayStoppedRunsTheVmWhenEveryHandlerStarts() throws Exception {
        handler("a", 0);
        machine.vmStartOrStayStopped(RunState.INTERNAL_ERROR);
        assertEquals(RunState.RUNNING, machine.runState());
        assertEquals("cpus:resume", events.get(events.size() - 1), events.toString());
        assertTrue(cpus.running);
    }

    @Test
    void listenersSeeEveryTransition() throws Exception {
        machine.vmStart();
        machine.vmStop(RunState.PAUSED);
        machine.vmStart();
        machine.vmStop(RunState.FINISH_MIGRATE);
        machine.setRunState(RunState.POSTMIGRATE);
        machine.setRunState(RunState.POSTMIGRATE);
        assertEquals(List.of("state:prelaunch->running", "state:running->paused", "state:paused->running",
                "state:running->finish-migrate", "state:finish-migrate->postmigrate"), only("state:"));
    }

    @Test
    void stopWhenNotRunningOnlyChangesTheState() throws Exception {
        handler("a", 0);
        machine.vmStop(RunState.PAUSED);
        assertEquals(List.of("state:prelaunch->paused"), events);
        machine.vmStop(RunState.FINISH_MIGRATE);
        assertEquals(List.of("state:prelaunch->paused", "state:paused->finish-migrate"), events);
        assertEquals(RunState.FINISH_MIGRATE, machine.runState());
    }

    @Test
    void startWhenRunningDoesNothing() throws Exception {
        handler("a", 0);
        machine.vmStart();
        events.clear();
        machine.vmStart();
        assertEquals(List.of(), events);
    }

    @Test
    void stopIntoRunningIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> machine.vmStop(RunState.RUNNING));
        assertEquals(RunState.PRELAUNCH, machine.runState());
    }

    @Test
    void removedHandlerIsNotCalled() throws Exception {
        Recording a = handler("a", 0);
        handler("b", 0);
        machine.removeVmChangeStateHandler(a);
        machine.vmStart();
        assertEquals(List.of("prepare:b:run:running", "change:b:run:running"),
                events.stream().filter(e -> e.startsWith("prepare") || e.startsWith("change")).toList());
    }

    @Test
    void closeClosesCpusThenDevicesInReverseThenMemory() throws Exception {
        FakeCpus own = new FakeCpus();
        String region = "machine-close-check-" + System.nanoTime();
        Machine m = new Machine("vm1", GuestMemory.builder().region(region, 0, 64 * 1024).build(), own,
                RunState.PRELAUNCH);
        m.addDevice(() -> events.add("close:first"));
        m.addDevice(() -> {
            events.add("close:broken");
            throw new IllegalStateException("broken device");
        });
        m.addDevice(() -> events.add("close:last"));
        assertTrue(mapsMention(region));
        m.close();
        assertEquals(List.of("cpus:close", "close:last", "close:broken", "close:first"), events,
                "a device that fails to close does not keep the others open");
        assertTrue(own.closed);
        assertFalse(mapsMention(region), "guest memory is unmapped");
    }

    private static boolean mapsMention(String name) throws java.io.IOException {
        return java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/maps")).stream()
                .anyMatch(l -> l.contains(name));
    }
}
