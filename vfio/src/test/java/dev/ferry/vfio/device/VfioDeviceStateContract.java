package dev.ferry.vfio.device;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.fsm.RefusedStateRequestException;
import dev.ferry.vfio.fsm.VfioArc;
import dev.ferry.vfio.fsm.VfioMigrationFsm;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.EnumSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The state-machine part of the {@link VfioDeviceContractTest} suite: every (current, target)
 * request against the kernel's arc table, the data fds the arcs open and when they stop working,
 * the reads of a saving session (ENOMSG, EOF, PRECOPY_INFO), ERROR and reset, and ENOTTY from a
 * device without migration or DMA logging.
 */
public abstract class VfioDeviceStateContract extends VfioDeviceContractFixture {
    /** Arcs that open a data session (a SET ending with one returns the data fd). */
    private static final Set<VfioArc> OPENING = Set.of(new VfioArc(RUNNING, PRE_COPY),
            new VfioArc(RUNNING_P2P, PRE_COPY_P2P), new VfioArc(STOP, STOP_COPY), new VfioArc(STOP, RESUMING));
    private static final Set<VfioDeviceState> SAVING = EnumSet.of(PRE_COPY, PRE_COPY_P2P, STOP_COPY);

    /** The states {@code current} passes through for {@code target}, or null when the kernel refuses. */
    private static List<VfioDeviceState> expectedPath(VfioDeviceState current, VfioDeviceState target,
            MigCapabilities caps) {
        if (current == target) {
            return List.of();
        }
        try {
            return VfioMigrationFsm.path(current, target, caps);
        } catch (RefusedStateRequestException e) {
            return null;
        }
    }

    private static List<VfioDeviceState> supportedStates(MigCapabilities caps) {
        return Stream.of(VfioDeviceState.values()).filter(s -> VfioMigrationFsm.supported(s, caps)).toList();
    }

    /** True if {@code fd} still belongs to a live session: a small read or an empty write succeeds. */
    private boolean works(VfioDataFd fd, boolean saving) throws VfioException {
        try (Mapping one = Mapping.anonymous(PAGE)) {
            if (saving) {
                fd.read(one.address(), 1);
            } else {
                fd.write(one.address(), 0);
            }
            return true;
        } catch (VfioException e) {
            if (e.errno() == Errno.ENODEV) {
                return false;
            }
            throw e;
        }
    }

    // ------------------------------------------------------------------------------------------
    // The arc table

    @ParameterizedTest(name = "{0}")
    @MethodSource("capabilitySets")
    void everyRequestFollowsTheKernelArcTable(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(caps), dmaA);
        assertEquals(caps, d.migrationFlags());
        assertEquals(RUNNING, d.deviceState(), "a device starts RUNNING");
        // leaving RESUMING validates what was written: the walk writes a valid image first
        Image valid = save(device(spec(caps), dmaB), 0);
        Set<VfioArc> opened = new LinkedHashSet<>();
        Set<VfioArc> taken = new LinkedHashSet<>();
        for (VfioDeviceState current : supportedStates(caps)) {
            for (VfioDeviceState target : VfioDeviceState.values()) {
                String cell = caps + " " + current + "->" + target;
                d.reset();
                assertEquals(RUNNING, d.deviceState(), cell + ": reset must leave RUNNING");
                VfioDataFd old = own(d.setDeviceState(current));
                assertEquals(current, d.deviceState(), cell + ": reaching " + current);
                boolean oldSaving = SAVING.contains(current);
                assertEquals(oldSaving || current == RESUMING, old != null,
                        cell + ": reaching " + current + " from RUNNING " + (old == null ? "gave no" : "gave a") + " data fd");
                if (current == RESUMING) {
                    write(old, valid, valid.length);
                }

                List<VfioDeviceState> path = expectedPath(current, target, caps);
                if (path == null) {
                    failsWith(Errno.EINVAL, () -> d.setDeviceState(target), cell + " must be refused");
                    assertEquals(current, d.deviceState(), cell + ": a refused request must not move the device");
                    if (old != null) {
                        assertTrue(works(old, oldSaving), cell + ": a refused request must not end the session");
                    }
                    continue;
                }
                VfioDataFd fd = own(d.setDeviceState(target));
                assertEquals(target, d.deviceState(), cell + ": GET must read back the target");
                VfioDeviceState from = current;
                VfioArc last = null;
                for (VfioDeviceState s : path) {
                    last = new VfioArc(from, s);
                    taken.add(last);
                    from = s;
                }
                boolean opens = last != null && OPENING.contains(last);
                assertEquals(opens, fd != null, cell + " (path " + path + ") " + (fd == null ? "returned no" : "returned a")
                        + " data fd");
                if (opens) {
                    opened.add(last);
                    assertTrue(works(fd, SAVING.contains(target)), cell + ": the new data fd must work");
                }
                if (old != null) {
                    boolean survives = !path.isEmpty() && oldSaving && SAVING.containsAll(path) || path.isEmpty();
                    assertEquals(survives, works(old, oldSaving), cell + ": the " + current + " session must "
                            + (survives ? "go on" : "end (ENODEV)"));
                }
            }
        }
        Set<VfioArc> expectedOpeners = new LinkedHashSet<>();
        for (VfioArc a : OPENING) {
            if (VfioMigrationFsm.isLegalArc(a, caps)) {
                expectedOpeners.add(a);
            }
        }
        assertEquals(expectedOpeners, opened, caps + ": the arcs that returned a data fd");
        assertTrue(taken.containsAll(expectedOpeners));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("preCopySets")
    void stopCopyToPreCopyIsRefused(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(caps), dmaA);
        VfioDataFd pre = own(d.setDeviceState(PRE_COPY));
        assertNull(d.setDeviceState(STOP_COPY), "PRE_COPY->STOP_COPY stays in the saving session");
        for (VfioDeviceState t : caps.hasAll(MigCapabilities.P2P) ? List.of(PRE_COPY, PRE_COPY_P2P) : List.of(PRE_COPY)) {
            failsWith(Errno.EINVAL, () -> d.setDeviceState(t), "STOP_COPY->" + t);
            assertEquals(STOP_COPY, d.deviceState());
        }
        assertTrue(works(pre, true), "the refused request must leave the STOP_COPY session alone");
    }

    // ------------------------------------------------------------------------------------------
    // Data fds

    @ParameterizedTest(name = "{0}")
    @MethodSource("capabilitySets")
    void aDataFdStopsWorkingWhenItsSessionEnds(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(caps), dmaA);
        d.setDeviceState(STOP);
        VfioDataFd first = own(d.setDeviceState(STOP_COPY));
        assertTrue(works(first, true));
        d.setDeviceState(STOP);
        Mapping b = buffer(PAGE);
        failsWith(Errno.ENODEV, () -> first.read(b.address(), PAGE), "read after STOP_COPY->STOP");
        assertEquals(STOP, d.deviceState(), "a dead fd must not move the device");
        VfioDataFd second = own(d.setDeviceState(STOP_COPY));
        assertNotNull(second);
        failsWith(Errno.ENODEV, () -> first.read(b.address(), PAGE), "an old fd stays dead in a new session");
        assertTrue(works(second, true));
        second.close();
        second.close();
        assertEquals(STOP_COPY, d.deviceState(), "closing the data fd does not change the device state");
        d.setDeviceState(STOP);

        VfioDataFd resume = own(d.setDeviceState(RESUMING));
        d.reset();
        failsWith(Errno.ENODEV, () -> resume.write(b.address(), 1), "write after a reset in RESUMING");

        if (caps.hasAll(MigCapabilities.PRE_COPY)) {
            VfioDataFd pre = own(d.setDeviceState(PRE_COPY));
            assertTrue(works(pre, true));
            d.setDeviceState(RUNNING);
            failsWith(Errno.ENODEV, () -> pre.read(b.address(), PAGE), "read after PRE_COPY->RUNNING");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("capabilitySets")
    void stopCopyEndsWithEofAndStaysThere(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(caps), dmaA);
        Image image = image();
        VfioDataFd fd = own(d.setDeviceState(STOP_COPY));
        assertNotNull(fd);
        assertTrue(d.stopCopyLength() > 0, "MIG_DATA_SIZE in STOP_COPY");
        Mapping b = buffer(64 << 10);
        long n;
        while ((n = fd.read(b.address(), 64 << 10)) > 0) {
            image.length += n;
        }
        assertEquals(0, n, "STOP_COPY must end with 0 (never ENOMSG)");
        assertTrue(image.length > STATE, "the image holds at least the device state");
        for (int i = 0; i < 3; i++) {
            assertEquals(0, fd.read(b.address(), 64 << 10), "read after the end is 0 again");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("preCopySets")
    void preCopyAnswersEnomsgWhenIdle(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(caps), dmaA);
        VfioDataFd fd = own(d.setDeviceState(PRE_COPY));
        Image image = image();
        assertEquals(VfioDataFd.NO_DATA, drain(fd, image, 16 << 10), "PRE_COPY must pause with ENOMSG");
        assertTrue(image.length > 0, "PRE_COPY offers initial data");
        Mapping b = buffer(PAGE);
        for (int i = 0; i < 3; i++) {
            assertEquals(VfioDataFd.NO_DATA, fd.read(b.address(), PAGE), "an idle PRE_COPY device answers ENOMSG");
        }
        if (caps.hasAll(MigCapabilities.P2P)) {
            assertNull(d.setDeviceState(PRE_COPY_P2P));
            assertEquals(VfioDataFd.NO_DATA, fd.read(b.address(), PAGE), "PRE_COPY_P2P idles with ENOMSG too");
        }
        assertNull(d.setDeviceState(STOP_COPY));
        assertEquals(0, drain(fd, image, 16 << 10));
        assertEquals(0, fd.read(b.address(), PAGE));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("preCopySets")
    void precopyInfoOnlyInPreCopyStates(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(caps), dmaA);
        VfioDataFd fd = own(d.setDeviceState(PRE_COPY));
        PrecopyInfo info = fd.precopyInfo();
        assertTrue(info.initialBytes() > 0, "PRE_COPY starts with initial bytes: " + info);
        if (caps.hasAll(MigCapabilities.P2P)) {
            d.setDeviceState(PRE_COPY_P2P);
            fd.precopyInfo();
        }
        d.setDeviceState(STOP_COPY);
        failsWith(Errno.EINVAL, fd::precopyInfo, "PRECOPY_INFO in STOP_COPY");
        d.setDeviceState(STOP);
        VfioDataFd stopCopy = own(d.setDeviceState(STOP_COPY));
        failsWith(Errno.EINVAL, stopCopy::precopyInfo, "PRECOPY_INFO on a STOP_COPY session");
        d.setDeviceState(STOP);
        VfioDataFd resume = own(d.setDeviceState(RESUMING));
        VfioException e = assertThrows(VfioException.class, resume::precopyInfo);
        assertTrue(e.errno() == Errno.EINVAL || e.errno() == Errno.ENOTTY, "PRECOPY_INFO on a resuming fd: " + e);
        d.reset();
        VfioDataFd again = own(d.setDeviceState(PRE_COPY));
        d.setDeviceState(RUNNING);
        failsWith(Errno.EINVAL, again::precopyInfo, "PRECOPY_INFO after PRE_COPY->RUNNING");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("preCopySets")
    void initialBytesCountDownAndDirtyBytesGrow(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(caps), dmaA);
        VfioDataFd fd = own(d.setDeviceState(PRE_COPY));
        Mapping b = buffer(PAGE);
        PrecopyInfo info = fd.precopyInfo();
        long first = info.initialBytes();
        assertEquals(0, info.dirtyBytes(), "nothing changed yet: " + info);
        long reads = 0;
        while (info.initialBytes() > 0) {
            long n = fd.read(b.address(), PAGE);
            assertTrue(n > 0, "initial bytes remain (" + info + ") but read answered " + n);
            PrecopyInfo next = fd.precopyInfo();
            assertTrue(next.initialBytes() <= info.initialBytes(), "initial_bytes grew: " + info + " -> " + next);
            info = next;
            assertTrue(++reads < 4 * first / PAGE + 100, "initial_bytes does not reach 0: " + info);
        }
        assertTrue(reads > 1, "initial data took " + reads + " reads of a page");

        backing(d).advance(200);
        PrecopyInfo changed = fd.precopyInfo();
        assertEquals(0, changed.initialBytes());
        assertTrue(changed.dirtyBytes() > 0, "a device that changed must report dirty bytes: " + changed);
        Image image = image();
        assertEquals(VfioDataFd.NO_DATA, drain(fd, image, PAGE));
        assertTrue(image.length > 0, "dirty data must be readable");
        assertEquals(new PrecopyInfo(0, 0), fd.precopyInfo(), "everything read");
    }

    // ------------------------------------------------------------------------------------------
    // ERROR and reset

    @ParameterizedTest(name = "{0}")
    @MethodSource("capabilitySets")
    void errorIsLeftOnlyByReset(MigCapabilities caps) throws Exception {
        VfioDevice d = device(spec(flags(caps) + ",fault=error-set:STOP_COPY"), dmaA);
        VfioException e = assertThrows(VfioException.class, () -> d.setDeviceState(STOP_COPY));
        assertNotEquals(0, e.errno());
        assertEquals(ERROR, d.deviceState(), "the injected fault puts the device in ERROR");
        for (VfioDeviceState t : VfioDeviceState.values()) {
            if (t == ERROR) {
                // the kernel's drivers loop while (state != target): ERROR->ERROR may succeed as a no-op
                try {
                    assertNull(d.setDeviceState(t));
                } catch (VfioException refused) {
                    assertEquals(Errno.name(Errno.EINVAL), Errno.name(refused.errno()), refused.getMessage());
                }
            } else {
                failsWith(Errno.EINVAL, () -> d.setDeviceState(t), "ERROR->" + t);
            }
            assertEquals(ERROR, d.deviceState(), "only a reset leaves ERROR (asked for " + t + ")");
        }
        d.reset();
        assertEquals(RUNNING, d.deviceState());
        assertNull(d.setDeviceState(STOP));
        assertNull(d.setDeviceState(RUNNING));
    }

    @Test
    void requestingErrorIsRefused() throws Exception {
        VfioDevice d = device(spec(MigCapabilities.ALL), dmaA);
        failsWith(Errno.EINVAL, () -> d.setDeviceState(ERROR), "RUNNING->ERROR");
        assertEquals(RUNNING, d.deviceState());
    }

    // ------------------------------------------------------------------------------------------
    // Devices without migration or DMA logging

    @Test
    void aDeviceWithoutMigrationAnswersEnotty() throws Exception {
        VfioDevice d = device(spec("no-migration"), dmaA);
        failsWith(Errno.ENOTTY, d::migrationFlags, "GET MIGRATION");
        failsWith(Errno.ENOTTY, d::deviceState, "GET MIG_DEVICE_STATE");
        failsWith(Errno.ENOTTY, () -> d.setDeviceState(STOP), "SET MIG_DEVICE_STATE");
        failsWith(Errno.ENOTTY, d::stopCopyLength, "GET MIG_DATA_SIZE");
        d.reset();
    }

    @Test
    void aDeviceWithoutDmaLoggingAnswersEnotty() throws Exception {
        VfioDevice d = device(spec("no-dma-log"), dmaA);
        assertFalse(d.dmaLoggingSupported());
        Mapping bitmap = buffer(PAGE);
        failsWith(Errno.ENOTTY, () -> d.dmaLoggingStart(PAGE, List.of(new IovaRange(0, MEMORY))), "DMA_LOGGING_START");
        failsWith(Errno.ENOTTY, d::dmaLoggingStop, "DMA_LOGGING_STOP");
        failsWith(Errno.ENOTTY, () -> d.dmaLoggingReport(0, MEMORY, PAGE, bitmap.address()), "DMA_LOGGING_REPORT");
        assertNull(d.setDeviceState(STOP), "migration still works");
        assertEquals(STOP, d.deviceState());
    }
}
