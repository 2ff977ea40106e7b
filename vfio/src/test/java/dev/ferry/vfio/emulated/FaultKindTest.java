package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each {@link FaultKind} does what its javadoc says, on a device that is otherwise healthy; and
 * the same device without the fault does not (so the test sees the fault, not the device).
 */
class FaultKindTest {
    private static final long STATE = 256L << 10;
    private final GuestMemory memory = GuestMemory.ofSize(8L << 20);
    private final GuestDmaSpace dma = new GuestDmaSpace(memory);
    private final Mapping buffer = Mapping.anonymous(4L << 20);
    private final List<AutoCloseable> owned = new ArrayList<>();

    @AfterEach
    void close() throws Exception {
        for (int i = owned.size() - 1; i >= 0; i--) {
            owned.get(i).close();
        }
        buffer.close();
        memory.close();
    }

    private EmulatedVfioDevice device(String flags) {
        EmulatedVfioDevice d = new EmulatedVfioDevice("vf0",
                EmulatedVfSpec.parse("state=" + STATE + ",dirty-rate=0," + flags), dma);
        owned.add(d);
        return d;
    }

    private VfioDataFd own(VfioDataFd fd) {
        if (fd != null) {
            owned.add(fd);
        }
        return fd;
    }

    private static VfioException fails(int errno, Executable call) {
        VfioException e = assertThrows(VfioException.class, call);
        assertEquals(Errno.name(errno), Errno.name(e.errno()), e.getMessage());
        return e;
    }

    /** A whole STOP_COPY image of {@code d} into the buffer; returns its length. */
    private long saveAll(EmulatedVfioDevice d) throws VfioException {
        d.setDeviceState(STOP);
        VfioDataFd fd = own(d.setDeviceState(STOP_COPY));
        long len = 0;
        long n;
        while ((n = fd.read(buffer.address() + len, 64 << 10)) > 0) {
            len += n;
        }
        d.setDeviceState(STOP);
        return len;
    }

    private void loadAll(EmulatedVfioDevice d, long len) throws VfioException {
        d.setDeviceState(STOP);
        VfioDataFd fd = own(d.setDeviceState(RESUMING));
        for (long done = 0; done < len; ) {
            done += fd.write(buffer.address() + done, len - done);
        }
        d.setDeviceState(STOP);
    }

    @ParameterizedTest
    @EnumSource(FaultKind.class)
    void everyFaultDoesWhatItSays(FaultKind kind) throws Exception {
        switch (kind) {
            case FAIL_SET -> {
                EmulatedVfioDevice d = device("fault=fail-set:STOP_COPY");
                VfioException e = fails(Errno.EIO, () -> d.setDeviceState(STOP_COPY));
                assertTrue(e.getMessage().contains("fail-set"), e.getMessage());
                assertEquals(STOP, d.deviceState(), "the device stays where the failing arc started");
                assertEquals(List.of(RUNNING, RUNNING_P2P, STOP), d.stateHistory());
                d.setDeviceState(RUNNING);
                assertEquals(RUNNING, d.deviceState(), "other arcs still work");
            }
            case ERROR_SET -> {
                EmulatedVfioDevice d = device("fault=error-set:RUNNING_P2P");
                fails(Errno.EIO, () -> d.setDeviceState(STOP));
                assertEquals(ERROR, d.deviceState());
                fails(Errno.EINVAL, () -> d.setDeviceState(RUNNING));
                d.reset();
                assertEquals(RUNNING, d.deviceState());
                assertEquals(1, d.resets());
            }
            case SLOW_SET -> {
                EmulatedVfioDevice d = device("fault=slow-set:STOP:80");
                long t0 = System.nanoTime();
                d.setDeviceState(STOP);
                assertTrue(System.nanoTime() - t0 >= TimeUnit.MILLISECONDS.toNanos(80), "the arc into STOP took 80 ms more");
                assertTrue(d.arcNanos().get(STOP) >= TimeUnit.MILLISECONDS.toNanos(80));
                assertEquals(STOP, d.deviceState(), "a slow arc still succeeds");
            }
            case FAIL_READ -> {
                EmulatedVfioDevice d = device("fault=fail-read");
                d.setDeviceState(STOP);
                VfioDataFd fd = own(d.setDeviceState(STOP_COPY));
                fails(Errno.EIO, () -> fd.read(buffer.address(), 4096));
                long len = 0;
                long n;
                while ((n = fd.read(buffer.address() + len, 64 << 10)) > 0) {
                    len += n;
                }
                d.setDeviceState(STOP);
                EmulatedVfioDevice dst = device("seed=5");
                loadAll(dst, len);
                assertEquals(d.stateDigest(), dst.stateDigest(), "the failed read lost nothing of the stream");
            }
            case CORRUPT_DATA -> {
                long len = saveAll(device("fault=corrupt-data"));
                EmulatedVfioDevice dst = device("");
                VfioException e = assertThrows(VfioException.class, () -> loadAll(dst, len));
                assertTrue(e.getMessage().contains("digest mismatch"), e.getMessage());
                assertEquals(RESUMING, dst.deviceState());
            }
            case REJECT_LOAD -> {
                long len = saveAll(device(""));
                EmulatedVfioDevice dst = device("fault=reject-load");
                VfioException e = fails(Errno.EINVAL, () -> loadAll(dst, len));
                assertTrue(e.getMessage().contains("reject-load"), e.getMessage());
                loadAll(device(""), len);
            }
            case FAIL_RESET -> {
                EmulatedVfioDevice d = device("fault=fail-reset");
                fails(Errno.EIO, d::reset);
                assertEquals(0, d.resets());
                device("").reset();
            }
            case NO_EOF -> {
                EmulatedVfioDevice d = device("fault=no-eof");
                d.setDeviceState(STOP);
                VfioDataFd fd = own(d.setDeviceState(STOP_COPY));
                long n;
                long len = 0;
                while ((n = fd.read(buffer.address() + len, 64 << 10)) > 0) {
                    len += n;
                }
                assertEquals(VfioDataFd.NO_DATA, n, "no-eof ends STOP_COPY with ENOMSG");
                assertTrue(len > STATE);
            }
            case EOF_IN_PRECOPY -> {
                EmulatedVfioDevice d = device("fault=eof-in-precopy");
                VfioDataFd fd = own(d.setDeviceState(PRE_COPY));
                long n;
                while ((n = fd.read(buffer.address(), 64 << 10)) > 0) {
                    assertTrue(n > 0);
                }
                assertEquals(0, n, "eof-in-precopy answers 0 instead of ENOMSG");
                assertEquals(PRE_COPY, d.deviceState());
            }
            case BAD_READBACK -> {
                EmulatedVfioDevice d = device("fault=bad-readback");
                d.setDeviceState(STOP);
                assertEquals(RUNNING, d.deviceState(), "GET keeps answering the state before the SET");
                assertEquals(STOP, d.currentState());
                d.setDeviceState(RUNNING);
                assertEquals(STOP, d.deviceState());
            }
            case ACCEPT_GARBAGE -> {
                EmulatedVfioDevice d = device("fault=accept-garbage");
                NativeMemory.fill(buffer.address(), 100_000, (byte) 0x33);
                loadAll(d, 100_000);
                assertEquals(STOP, d.deviceState(), "garbage accepted");
                assertThrows(VfioException.class, () -> loadAll(device(""), 100_000), "a healthy device refuses it");
            }
            case STALE_FD -> {
                EmulatedVfioDevice d = device("fault=stale-fd");
                d.setDeviceState(STOP);
                VfioDataFd fd = own(d.setDeviceState(STOP_COPY));
                d.setDeviceState(STOP);
                assertEquals(VfioDataFd.NO_DATA, fd.read(buffer.address(), 4096), "the ended session's fd still answers");
            }
            case STUCK_INITIAL -> {
                EmulatedVfioDevice d = device("fault=stuck-initial");
                VfioDataFd fd = own(d.setDeviceState(PRE_COPY));
                PrecopyInfo first = fd.precopyInfo();
                while (fd.read(buffer.address(), 64 << 10) > 0) {
                    assertEquals(first.initialBytes(), fd.precopyInfo().initialBytes(), "initial_bytes moved");
                }
                assertTrue(first.initialBytes() > 0);
            }
            case LOG_NO_CLEAR -> {
                EmulatedVfioDevice d = device("fault=log-no-clear");
                d.dmaLoggingStart(4096, List.of(new IovaRange(0, 1L << 20)));
                d.simulateDma(8192, 1);
                for (int i = 0; i < 2; i++) {
                    NativeMemory.putLong(buffer.address(), 0);
                    d.dmaLoggingReport(0, 1L << 20, 4096, buffer.address());
                    assertEquals(1L << 2, NativeMemory.getLong(buffer.address()), "report " + i);
                }
            }
            case LOSE_STATE -> {
                EmulatedVfioDevice src = device("");
                src.advance(100);
                long len = saveAll(src);
                EmulatedVfioDevice lossy = device("fault=lose-state");
                loadAll(lossy, len);
                assertNotEquals(src.stateDigest(), lossy.stateDigest(), "lose-state drops part of the state");
                EmulatedVfioDevice healthy = device("");
                loadAll(healthy, len);
                assertEquals(src.stateDigest(), healthy.stateDigest());
            }
            default -> throw new AssertionError("no test for fault " + kind);
        }
    }

    @Test
    void faultFlagsAreCheckedWhenParsed() {
        assertEquals(new Fault(FaultKind.SLOW_SET, STOP, 200), Fault.parse("slow-set:STOP"));
        assertEquals(new Fault(FaultKind.FAIL_SET, VfioDeviceState.PRE_COPY_P2P, 0), Fault.parse("fail-set:pre-copy-p2p"));
        assertEquals("error-set:STOP_COPY", Fault.parse("error-set:stop_copy").toString());
        for (String bad : List.of("fail-set", "fail-set:ERROR", "fail-set:NOWHERE", "fail-read:STOP", "nope",
                "fail-set:STOP:5", "slow-set:STOP:5:6")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Fault.parse(bad), bad);
            assertNotNull(e.getMessage());
        }
    }
}
