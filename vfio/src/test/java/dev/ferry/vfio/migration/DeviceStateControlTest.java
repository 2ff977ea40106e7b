package dev.ferry.vfio.migration;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** QEMU's {@code vfio_migration_set_state} on its own: recover, reset, lost, and the data fd's one owner. */
class DeviceStateControlTest {
    private final GuestMemory memory = GuestMemory.ofSize(64 << 10);
    private final List<EmulatedVfioDevice> devices = new ArrayList<>();
    private final List<String> lostReasons = new ArrayList<>();

    @AfterEach
    void close() {
        devices.forEach(EmulatedVfioDevice::close);
        memory.close();
    }

    private DeviceStateControl control(String flags) {
        EmulatedVfioDevice d = new EmulatedVfioDevice("vf0", EmulatedVfSpec.parse(flags + ",state=64K"),
                new GuestDmaSpace(memory));
        devices.add(d);
        return new DeviceStateControl(d, new VfioMigrationStats("vf0", RUNNING, System::nanoTime), System::nanoTime,
                lostReasons::add);
    }

    private EmulatedVfioDevice device() {
        return devices.get(devices.size() - 1);
    }

    @Test
    void aSessionKeepsItsFdUntilCleanupAndASecondOneIsOutOfSync() throws Exception {
        DeviceStateControl c = control("stop-copy,pre-copy");
        c.set(PRE_COPY, RUNNING);
        assertNotNull(c.dataFd());
        c.setOrReset(RUNNING); // the session ends, the fd stays until cleanup closes it
        assertNotNull(c.dataFd());
        StateChangeFailure f = assertThrows(StateChangeFailure.class, () -> c.set(PRE_COPY, RUNNING));
        assertTrue(f.getMessage().contains("vf0: SET MIG_DEVICE_STATE PRE_COPY opened a data session while the previous"
                + " one's fd is still held (data_fd out of sync)"), f.getMessage());
        assertEquals(PRE_COPY, c.state());
        c.closeDataFd();
        assertNull(c.dataFd());
        c.setOrReset(STOP_COPY);
        assertNull(c.dataFd(), "PRE_COPY -> STOP_COPY stays in the session whose fd was refused: no new fd");
    }

    @Test
    void aFailedSetTriesTheRecoverStateFirst() throws Exception {
        DeviceStateControl c = control("stop-copy,fault=fail-set:STOP_COPY");
        c.setOrReset(STOP);
        StateChangeFailure f = assertThrows(StateChangeFailure.class, () -> c.set(STOP_COPY, STOP));
        assertEquals("vf0: SET MIG_DEVICE_STATE STOP->STOP_COPY: EIO (arc STOP->STOP_COPY: EIO (injected fault:"
                + " fail-set:STOP_COPY)); recovered to STOP", f.getMessage());
        assertEquals(STOP, c.state());
        assertEquals(0, device().resets());
    }

    @Test
    void aRecoveryThatFailsResetsTheDevice() throws Exception {
        DeviceStateControl c = control("stop-copy,fault=error-set:STOP_COPY");
        c.setOrReset(STOP);
        StateChangeFailure f = assertThrows(StateChangeFailure.class, () -> c.set(STOP_COPY, STOP));
        assertTrue(f.getMessage().startsWith("vf0: SET MIG_DEVICE_STATE STOP->STOP_COPY: EIO"), f.getMessage());
        assertTrue(f.getMessage().contains("recovering to STOP failed too: SET MIG_DEVICE_STATE ERROR->STOP: EINVAL"),
                f.getMessage());
        assertTrue(f.getMessage().endsWith("(device now ERROR); vf0 reset, now RUNNING"), f.getMessage());
        assertEquals(RUNNING, c.state());
        assertEquals(RUNNING, device().currentState());
        assertEquals(1, device().resets());
        assertTrue(lostReasons.isEmpty());
    }

    @Test
    void aFailedResetLosesTheDeviceForGood() throws Exception {
        DeviceStateControl c = control("stop-copy,fault=error-set:STOP,fault=fail-reset");
        StateChangeFailure f = assertThrows(StateChangeFailure.class, () -> c.setOrReset(STOP));
        assertTrue(f.getMessage().endsWith("VFIO_DEVICE_RESET failed too (VFIO_DEVICE_RESET: EIO (injected fault:"
                + " fail-reset)): vf0 is lost"), f.getMessage());
        assertTrue(c.lost());
        assertEquals(1, lostReasons.size());
        assertEquals(ERROR, device().currentState());
        StateChangeFailure again = assertThrows(StateChangeFailure.class, () -> c.setOrReset(RUNNING));
        assertTrue(again.getMessage().startsWith("vf0: cannot SET RUNNING: the device is lost"), again.getMessage());
        assertEquals(1, lostReasons.size(), "reported once");
        assertEquals(List.of(RUNNING, ERROR), device().stateHistory());
    }

    @Test
    void timesEachSetAndEachState() throws Exception {
        VfioMigrationStats stats = new VfioMigrationStats("vf0", RUNNING, new StepClock());
        EmulatedVfioDevice d = new EmulatedVfioDevice("vf0", EmulatedVfSpec.parse("stop-copy,p2p,state=64K"),
                new GuestDmaSpace(memory));
        devices.add(d);
        DeviceStateControl c = new DeviceStateControl(d, stats, new StepClock(), lostReasons::add);
        c.setOrReset(STOP);
        c.setOrReset(RUNNING);
        var s = stats.snapshot();
        assertEquals(java.util.Map.of("RUNNING->STOP", 1000L, "STOP->RUNNING", 1000L), s.setNanos());
        assertTrue(s.nanosInState().get(VfioDeviceState.STOP) > 0, s.nanosInState()::toString);
        assertEquals(RUNNING, s.state());
    }

    /** A clock that advances 1 µs per reading, so durations are exact without sleeping. */
    static final class StepClock implements java.util.function.LongSupplier {
        private long t;

        @Override
        public long getAsLong() {
            t += 1000;
            return t;
        }
    }
}
