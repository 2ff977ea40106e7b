package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.vhostuser.backend.BackendFaults;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.virtio.blk.BlkOptions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntConsumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The front-end's table "Connection and rings" (docs/vhost-user.md), cell by cell, against Ferry's
 * own back-end in this process ({@link VhostUserBackend} on a temp image) and a soft guest doing
 * disk I/O ({@link VhostDiskVm}). Events come the way the VMM brings them where it can — VM start
 * and stop through the machine (the transport calls start and quiesce), a hang-up by the back-end
 * ending the connection, the reconnect timer on its own — and as the transport's call on the
 * device loop otherwise (reset, a second start while running). The states are read from
 * {@code describe}: LOST = not connected, RUNNING = rings running, IDLE = connected and stopped.
 *
 * <p>The cells marked "—" cannot happen: a lost device has no connection to hang up, and the timer
 * is armed only by a loss (a connected device's timer attempt returns at once). The timer and the
 * socket's watch are loop handlers, which run only while the VM runs, so the hang-up and timer
 * cells run with the VM running. Ferry's back-end keeps an in-flight region, so a loss with
 * requests out resumes from the used index; the NEEDS_RESET branch (no region) is
 * {@code QsdFailureTest}'s.
 */
@Timeout(60)
class ConnectionStateTableTest {
    enum State { IDLE, RUNNING, LOST }

    @TempDir
    Path dir;
    private Path img;
    private Path sock;
    private VhostUserBackend backend;
    private VhostDiskVm vm;
    private final List<Integer> requests = new CopyOnWriteArrayList<>();

    @BeforeEach
    void backEnd() throws Exception {
        img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        sock = dir.resolve("vub.sock");
        backend = serve();
    }

    @AfterEach
    void close() {
        if (vm != null) {
            vm.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    private VhostUserBackend serve() throws Exception {
        return VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(sock));
    }

    /** A back-end that looks at a ring only when its doorbell rings, as qemu-storage-daemon does. */
    private VhostUserBackend serveKickOnly() throws Exception {
        return VhostUserBackend.serveBlk(BlkOptions.of(img),
                BackendOptions.server(sock).withFaults(EnumSet.of(BackendFaults.KICK_ONLY)));
    }

    // ---- the states ----

    private VhostUserBlk running() throws Exception {
        vm = new VhostDiskVm("vm", sock, false);
        vm.machine.vmStart();
        vm.runFor(100);
        assertEquals(State.RUNNING, state());
        return vm.model();
    }

    /** IDLE with the VM stopped: started (the transport's context kept), rings stopped by the stop. */
    private VhostUserBlk idleStopped() throws Exception {
        VhostUserBlk m = running();
        vm.machine.vmStop(RunState.PAUSED);
        assertEquals(State.IDLE, state());
        return m;
    }

    /**
     * IDLE with the VM running: the driver reset the device (status 0), nothing started since. The
     * vCPUs stop first: a driver writing status 0 adds no request meanwhile (the device loop, its
     * watch and its timer go on).
     */
    private VhostUserBlk idleReset() throws Exception {
        VhostUserBlk m = running();
        vm.cpus.pause();
        onLoop(m::reset);
        assertEquals(State.IDLE, state());
        return m;
    }

    /** LOST: the back-end hung up and nothing listens on its socket any more. */
    private void loseBackend() throws Exception {
        backend.close();
        backend = null;
        QsdFailureTest.awaitTrue("the hang-up was seen: " + vm.vub(), () -> state() == State.LOST);
        assertEquals("the back-end hung up", vm.vub().get("lost"));
    }

    private State state() {
        Map<String, Object> d = vm.vub();
        if (!Boolean.TRUE.equals(d.get("connected"))) {
            return State.LOST;
        }
        return Boolean.TRUE.equals(d.get("rings-running")) ? State.RUNNING : State.IDLE;
    }

    /** Records every request the device sends from now on; {@code also} runs first (loop thread). */
    private void observe(VhostUserBlk m, IntConsumer also) {
        requests.clear();
        m.withFrontend(f -> f.requestObserver(r -> {
            also.accept(r);
            requests.add(r);
        }));
    }

    private void onLoop(Runnable r) {
        vm.machine.eventLoop().call(() -> {
            r.run();
            return null;
        });
    }

    /** Closes the back-end from inside the device's request {@code request} (before it is sent). */
    private IntConsumer closeBackendAt(int request) {
        return r -> {
            if (r == request && backend != null) {
                backend.close();
                backend = null;
            }
        };
    }

    private long reconnects() {
        return ((Number) vm.vub().get("reconnects")).longValue();
    }

    @SuppressWarnings("unchecked")
    private void assertRingsAtTheUsedIndex() {
        List<Object> qs = (List<Object>) vm.describe().get("queues");
        assertNotNull(qs, vm.describe().toString());
        for (Object o : qs) {
            Map<String, Object> q = (Map<String, Object>) o;
            assertEquals(q.get("used-idx"), q.get("last-avail-idx"), "the ring resumes at the used index: " + q);
        }
    }

    // ---- IDLE ----

    @Test
    void idleStartRunsTheRings() throws Exception {
        VhostUserBlk m = idleStopped();
        observe(m, r -> { });
        long done = vm.progress().completed();
        vm.machine.vmStart();
        assertEquals(State.RUNNING, state());
        assertTrue(requests.containsAll(List.of(VhostUser.SET_MEM_TABLE, VhostUser.SET_VRING_BASE,
                VhostUser.SET_VRING_KICK, VhostUser.SET_VRING_ENABLE)), "the start sequence: " + requests);
        vm.runFor(100);
        assertTrue(vm.progress().completed() > done);
    }

    @Test
    void idleStartWithAFailingRequestIsLostAndThrows() throws Exception {
        VhostUserBlk m = idleStopped();
        observe(m, closeBackendAt(VhostUser.SET_MEM_TABLE));
        VmStateChangeException e = assertThrows(VmStateChangeException.class,
                () -> vm.machine.vmStartOrStayStopped(RunState.PAUSED));
        assertTrue(e.getMessage().contains("disk0 (vhost-user-blk): starting the back-end failed"), e.getMessage());
        assertEquals(State.LOST, state());
        assertEquals(RunState.PAUSED, vm.machine.runState());
    }

    @Test
    void idleQuiesceSendsNothing() throws Exception {
        VhostUserBlk m = idleReset();
        observe(m, r -> { });
        vm.machine.vmStop(RunState.PAUSED); // the transport (started) calls quiesce
        assertEquals(State.IDLE, state());
        assertEquals(List.of(), requests);
    }

    @Test
    void idleResetSendsNothing() throws Exception {
        VhostUserBlk m = idleReset();
        observe(m, r -> { });
        onLoop(m::reset);
        assertEquals(State.IDLE, state());
        assertEquals(List.of(), requests);
    }

    /** IDLE → hang-up → LOST, and LOST → the timer connects → IDLE (the device was not started). */
    @Test
    void idleHangUpIsLostAndAReconnectLeavesItIdle() throws Exception {
        idleReset();
        loseBackend();
        backend = serve();
        QsdFailureTest.awaitTrue("the device reconnected: " + vm.vub(), () -> reconnects() == 1 && state() != State.LOST);
        assertEquals(State.IDLE, state(), "not started: the rings stay stopped");
        assertFalse(vm.vub().containsKey("lost"));
    }

    // ---- RUNNING ----

    @Test
    void runningStartSendsNothing() throws Exception {
        VhostUserBlk m = running();
        observe(m, r -> { });
        onLoop(() -> m.start(m.ctx));
        assertEquals(State.RUNNING, state());
        assertEquals(List.of(), requests);
    }

    /**
     * RUNNING → reset as the driver does it, writing 0 to the transport's Status register: the
     * transport drops its queues before the model's reset runs, and the rings the back-end serves
     * must still be stopped (ENABLE 0, GET_VRING_BASE), or the back-end would keep the old rings'
     * kick eventfd and requests and complete them into the rings the driver lays out afresh.
     */
    @Test
    void runningResetByTheDriverStopsTheRingsTheTransportDropped() throws Exception {
        VhostUserBlk m = running();
        observe(m, r -> { });
        vm.cpus.pause(); // the soft driver must not see its device reset under it
        vm.machine.mmio().write(vm.disk.transport().base() + 0x070, 4, 0);
        assertEquals(State.IDLE, state());
        int base = requests.indexOf(VhostUser.GET_VRING_BASE);
        assertTrue(base >= 0 && base < requests.indexOf(VhostUser.SET_STATUS), requests.toString());
        assertFalse(vm.describe().containsKey("needs-reset"), vm.describe().toString());
    }

    @Test
    void runningQuiesceStopsTheRings() throws Exception {
        VhostUserBlk m = running();
        observe(m, r -> { });
        vm.machine.vmStop(RunState.PAUSED);
        assertEquals(State.IDLE, state());
        assertTrue(requests.contains(VhostUser.GET_VRING_BASE), requests.toString());
    }

    @Test
    void runningQuiesceThatFailsIsLostAndThrows() throws Exception {
        VhostUserBlk m = running();
        observe(m, closeBackendAt(VhostUser.GET_VRING_BASE));
        VmStateChangeException e = assertThrows(VmStateChangeException.class, () -> vm.machine.vmStop(RunState.PAUSED));
        assertTrue(e.getMessage().contains("disk0 (vhost-user-blk): stopping the vhost-user back-end at")
                && e.getMessage().contains("GET_VRING_BASE"), e.getMessage());
        assertEquals(State.LOST, state());
    }

    @Test
    void runningResetStopsTheRingsAndClearsTheStatus() throws Exception {
        VhostUserBlk m = running();
        observe(m, r -> { });
        vm.cpus.pause(); // as in idleReset
        onLoop(m::reset);
        assertEquals(State.IDLE, state());
        assertTrue(requests.contains(VhostUser.GET_VRING_BASE), requests.toString());
        assertEquals(VhostUser.SET_STATUS, requests.get(requests.size() - 1), requests.toString());
    }

    /** RUNNING → hang-up → LOST at the used index; LOST → the timer connects → RUNNING, I/O going on. */
    @Test
    void runningHangUpIsLostAndAReconnectRunsTheRingsAgain() throws Exception {
        running();
        loseBackend();
        assertRingsAtTheUsedIndex();
        assertFalse(vm.describe().containsKey("needs-reset"), "Ferry's back-end keeps an in-flight region");
        backend = serve();
        QsdFailureTest.awaitTrue("the device reconnected: " + vm.vub(), () -> state() == State.RUNNING);
        assertEquals(1, reconnects());
        long done = vm.progress().completed();
        vm.runFor(100);
        assertTrue(vm.progress().completed() > done);
        assertEquals(0, vm.progress().errors(), vm.progress().toString());
    }

    /**
     * LOST → the timer connects → RUNNING, against a back-end that serves a ring only on a kick
     * (libvhost-user's way). The guest filled its queue while the back-end was away and waits for
     * completions, ringing no more; its doorbells were read by someone else, as by a lost
     * back-end's process, which holds the kick eventfd until it notices the hang-up. Only the
     * front-end's kick after the restart gets those requests served.
     */
    @Test
    void aReconnectKicksTheRingsItRestarted() throws Exception {
        backend.close();
        backend = serveKickOnly();
        VhostUserBlk m = running();
        loseBackend();
        QsdFailureTest.awaitTrue("the guest waits with its queue full: " + vm.progress(),
                () -> vm.progress().inFlight() == 16);
        long rung = vm.machine.eventLoop().call(() -> m.ctx.kickFd(0).consumeOrZero());
        long done = vm.progress().completed();
        backend = serveKickOnly();
        QsdFailureTest.awaitTrue("the device reconnected: " + vm.vub(), () -> state() == State.RUNNING);
        assertEquals(1, reconnects());
        vm.runFor(32);
        assertTrue(vm.progress().completed() >= done + 32, "rung while lost: " + rung + ", " + vm.progress());
        assertEquals(0, vm.progress().errors(), vm.progress().toString());
    }

    /**
     * Every start hands a ring its call eventfd before its kick eventfd — a start on the same
     * connection (VM start) and one on a new connection (the timer's reconnect): a back-end may
     * serve a ring the moment it gets the kick fd (libvhost-user does, reading a kick already
     * counted) and must then be able to notify. {@code QsdFailureTest} shows what
     * qemu-storage-daemon does otherwise.
     */
    @Test
    void everyStartGivesARingItsCallBeforeItsKick() throws Exception {
        VhostUserBlk m = idleStopped();
        observe(m, r -> { });
        vm.machine.vmStart();
        assertEquals(State.RUNNING, state());
        assertCallBeforeKick(new ArrayList<>(requests));
        List<Integer> later = new CopyOnWriteArrayList<>();
        m.link.observeLaterConnections(later::add);
        loseBackend();
        backend = serve();
        QsdFailureTest.awaitTrue("the device reconnected: " + vm.vub(), () -> state() == State.RUNNING);
        assertCallBeforeKick(new ArrayList<>(later));
    }

    private static void assertCallBeforeKick(List<Integer> sent) {
        int call = sent.indexOf(VhostUser.SET_VRING_CALL);
        int kick = sent.indexOf(VhostUser.SET_VRING_KICK);
        assertTrue(call >= 0 && kick >= 0 && call < kick, "SET_VRING_CALL (" + VhostUser.SET_VRING_CALL
                + ") before SET_VRING_KICK (" + VhostUser.SET_VRING_KICK + "): " + sent);
    }

    // ---- LOST ----

    /** LOST → start with nothing listening: one attempt, LOST, the start throws; LOST → quiesce (no log): LOST. */
    @Test
    void lostStartWithoutABackEndThrows() throws Exception {
        running();
        loseBackend();
        vm.machine.vmStop(RunState.PAUSED); // quiesce while lost and not logging: nothing to say
        assertEquals(State.LOST, state());
        long before = reconnects();
        VmStateChangeException e = assertThrows(VmStateChangeException.class,
                () -> vm.machine.vmStartOrStayStopped(RunState.PAUSED));
        assertTrue(e.getMessage().contains("is not connected (the back-end hung up)")
                && e.getMessage().contains("serves nothing until it reconnects"), e.getMessage());
        assertEquals(State.LOST, state());
        assertEquals(before, reconnects());
        assertNotNull(vm.vub().get("reconnect-error"));
    }

    @Test
    void lostStartConnectsOnceAndRuns() throws Exception {
        running();
        loseBackend();
        vm.machine.vmStop(RunState.PAUSED); // the loop's handlers (the timer) wait while the VM is stopped
        backend = serve();
        vm.machine.vmStart();
        assertEquals(State.RUNNING, state());
        assertEquals(1, reconnects());
        long done = vm.progress().completed();
        vm.runFor(100);
        assertTrue(vm.progress().completed() > done);
    }

    @Test
    void lostQuiesceWhileAMigrationLogsThrows() throws Exception {
        running();
        DirtyLogSource log = vm.machine.migration().dirtyLogSources().stream()
                .filter(s -> s.name().equals("disk0 vhost-user log")).findFirst().orElseThrow();
        log.start();
        try {
            loseBackend();
            VmStateChangeException e = assertThrows(VmStateChangeException.class,
                    () -> vm.machine.vmStop(RunState.PAUSED));
            assertTrue(e.getMessage().contains("is gone (the back-end hung up); its rings' state is unknown"),
                    e.getMessage());
            assertEquals(State.LOST, state());
        } finally {
            log.stop();
        }
    }

    @Test
    void lostResetStaysLost() throws Exception {
        VhostUserBlk m = running();
        loseBackend();
        onLoop(m::reset);
        assertEquals(State.LOST, state());
        assertEquals(null, m.ctx);
    }

    /**
     * LOST → the timer connects, and the start on the new connection fails midway (its back-end
     * goes at SET_VRING_ENABLE, after the ring went to it): LOST again with the timer armed again,
     * never a device that waits in silence; the next back-end gets the rings and the guest's I/O
     * goes on. (Ferry's back-end keeps an in-flight region; without one the requests out would make
     * the disk NEEDS_RESET: {@code QsdFailureTest.backendLostInTheMiddleOfAReconnectsStartNeedsAReset}.)
     */
    @Test
    void lostReconnectWhoseStartFailsIsLostAndTriesAgain() throws Exception {
        VhostUserBlk m = running();
        loseBackend();
        AtomicBoolean closedAtEnable = new AtomicBoolean();
        m.link.observeLaterConnections(r -> {
            if (r == VhostUser.SET_VRING_ENABLE && closedAtEnable.compareAndSet(false, true)) {
                closeBackendAt(r).accept(r);
            }
        });
        backend = serve();
        QsdFailureTest.awaitTrue("the reconnect's start failed: " + vm.vub(),
                () -> closedAtEnable.get() && state() == State.LOST);
        assertEquals(1, reconnects(), vm.vub().toString());
        assertTrue(String.valueOf(vm.vub().get("lost")).contains("SET_VRING_ENABLE"), vm.vub().toString());
        assertFalse(vm.describe().containsKey("needs-reset"), "Ferry's back-end keeps an in-flight region");
        backend = serve();
        QsdFailureTest.awaitTrue("the device reconnected again: " + vm.vub(), () -> state() == State.RUNNING);
        assertEquals(2, reconnects());
        vm.runFor(32);
        assertEquals(0, vm.progress().errors(), vm.progress().toString());
    }

    /** LOST → the timer fails: LOST, the next attempt after twice the delay, never more than 2 s. */
    @Test
    void lostReconnectThatFailsDoublesTheDelayUpToTwoSeconds() throws Exception {
        VhostUserBlk m = running();
        loseBackend();
        List<Long> delays = new ArrayList<>();
        QsdFailureTest.awaitTrue("the delay reached its maximum: " + delays, () -> {
            long d = vm.machine.eventLoop().call(m.link::reconnectDelayMs);
            if (delays.isEmpty() || delays.get(delays.size() - 1) != d) {
                delays.add(d);
            }
            return d == BackendLink.RECONNECT_MAX_MS;
        });
        for (int i = 1; i < delays.size(); i++) {
            assertEquals(Math.min(delays.get(i - 1) * 2, BackendLink.RECONNECT_MAX_MS), delays.get(i),
                    "each failed attempt doubles the delay: " + delays);
        }
        assertTrue(delays.get(0) <= 200, "the first attempt after 100 ms: " + delays);
        assertEquals(State.LOST, state());
        assertNotNull(vm.vub().get("reconnect-error"));
        assertEquals(0, reconnects());
    }
}
