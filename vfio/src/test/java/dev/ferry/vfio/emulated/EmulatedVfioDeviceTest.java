package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioDeviceContractTest;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The emulated device, used directly, keeps the whole {@link VfioDeviceContractTest} contract;
 * below, what is particular to it: exact PRECOPY_INFO and MIG_DATA_SIZE figures, the churn thread
 * changing state only while the device runs, and a 256 MiB state moved from device to device.
 */
class EmulatedVfioDeviceTest extends VfioDeviceContractTest {
    @Override
    protected VfioDevice open(EmulatedVfSpec spec, DmaSpace dma) {
        return new EmulatedVfioDevice("vf0", spec, dma);
    }

    @Override
    protected EmulatedVfioDevice backing(VfioDevice device) {
        return (EmulatedVfioDevice) device;
    }

    private EmulatedVfioDevice emulated(String flags) throws Exception {
        return (EmulatedVfioDevice) device(spec(flags), dmaA);
    }

    @Test
    void precopyInfoCountsExactlyTheBytesRead() throws Exception {
        EmulatedVfioDevice d = emulated("stop-copy,pre-copy,initial=" + (STATE / 2));
        VfioDataFd fd = own(d.setDeviceState(PRE_COPY));
        Mapping b = buffer(PAGE);
        long initial = fd.precopyInfo().initialBytes();
        long read = 0;
        long n;
        while ((n = fd.read(b.address(), 1000)) > 0) {
            read += n;
            assertEquals(initial - Math.min(read, initial), fd.precopyInfo().initialBytes(), "after " + read + " bytes");
        }
        assertEquals(initial, read, "PRE_COPY offers exactly initial_bytes, then ENOMSG");
        // what is left is the part of the state pre-copy does not offer, the control state and the end
        long predicted = d.stopCopyLength();
        d.setDeviceState(STOP_COPY);
        long rest = 0;
        while ((n = fd.read(b.address(), PAGE)) > 0) {
            rest += n;
        }
        assertEquals(predicted, rest, "MIG_DATA_SIZE after pre-copy");
        assertTrue(rest > STATE / 3, "the part pre-copy did not offer comes in STOP_COPY");
    }

    @Test
    void migDataSizeIsExactForAStoppedDevice() throws Exception {
        EmulatedVfioDevice d = emulated("stop-copy");
        d.setDeviceState(STOP);
        long predicted = d.stopCopyLength();
        VfioDataFd fd = own(d.setDeviceState(STOP_COPY));
        Image image = image();
        assertEquals(0, drain(fd, image, 7777));
        assertEquals(predicted, image.length);
        assertEquals(image.length, d.savedBytes());
    }

    /** Waits (bounded) until {@code value} moves away from {@code from}; true if it did. */
    private static boolean changes(LongSupplier value, long from) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            if (value.getAsLong() != from) {
                return true;
            }
            Thread.sleep(5);
        }
        return false;
    }

    @Test
    void theChurnThreadChangesStateOnlyWhileTheDeviceRuns() throws Exception {
        EmulatedVfioDevice d = (EmulatedVfioDevice) device(
                EmulatedVfSpec.parse("state=" + STATE + ",dirty-rate=4M"), dmaA);
        assertTrue(changes(d::churnSteps, 0), "a running device churns");
        assertTrue(changes(d::stateDigest, d.stateDigest()), "churn changes the state");

        for (VfioDeviceState stopped : List.of(STOP, STOP_COPY, RESUMING)) {
            d.reset();
            VfioDataFd fd = own(d.setDeviceState(stopped));
            long digest = d.stateDigest();
            long steps = d.churnSteps();
            Thread.sleep(120); // a dozen churn ticks
            assertEquals(digest, d.stateDigest(), "state changed in " + stopped);
            assertEquals(steps, d.churnSteps(), "churn ran in " + stopped);
            assertThrows(IllegalStateException.class, () -> d.advance(1), "advance in " + stopped);
            assertThrows(IllegalStateException.class, () -> d.simulateDma(0, 8), "DMA in " + stopped);
            if (fd != null) {
                fd.close();
            }
        }
        d.reset();
        d.setDeviceState(STOP);
        d.setDeviceState(RUNNING);
        assertTrue(changes(d::churnSteps, d.churnSteps()), "churn resumes with RUNNING");

        VfioDataFd pre = own(d.setDeviceState(PRE_COPY));
        Image image = image();
        drain(pre, image, 64 << 10);
        assertTrue(changes(() -> {
            try {
                return pre.precopyInfo().dirtyBytes();
            } catch (VfioException e) {
                throw new AssertionError(e);
            }
        }, 0), "a PRE_COPY device keeps changing, and reports it as dirty bytes");
    }

    @Test
    void aQuarterGigabyteStateMovesBetweenDevices() throws Exception {
        long size = 256L << 20;
        EmulatedVfSpec s = EmulatedVfSpec.parse("state=" + size + ",dirty-rate=0,seed=3");
        EmulatedVfioDevice src = (EmulatedVfioDevice) device(s, dmaA);
        EmulatedVfioDevice dst = (EmulatedVfioDevice) device(s.withSeed(4), dmaB);
        src.advance(10_000);
        assertNotEquals(src.stateDigest(), dst.stateDigest());
        Mapping bounce = buffer(1 << 20);
        VfioDataFd out = own(src.setDeviceState(PRE_COPY));
        dst.setDeviceState(STOP);
        VfioDataFd in = own(dst.setDeviceState(RESUMING));
        long moved = pump(out, in, bounce);
        src.advance(1000);
        pump(out, in, bounce);
        src.setDeviceState(STOP_COPY);
        moved += pump(out, in, bounce);
        dst.setDeviceState(STOP);
        assertTrue(moved > size, "moved " + moved);
        assertEquals(src.stateDigest(), dst.stateDigest());
        assertEquals(src.savedBytes(), dst.loadedBytes());
    }

    /** Copies from one data fd to another until ENOMSG or EOF; returns the bytes moved. */
    private static long pump(VfioDataFd out, VfioDataFd in, Mapping bounce) throws VfioException {
        long total = 0;
        long n;
        while ((n = out.read(bounce.address(), bounce.length())) > 0) {
            for (long done = 0; done < n; ) {
                done += in.write(bounce.address() + done, n - done);
            }
            total += n;
        }
        return total;
    }

    @Test
    void resetRestoresTheInitialStateAndCountsIt() throws Exception {
        EmulatedVfioDevice d = emulated("stop-copy,p2p,pre-copy");
        long fresh = d.stateDigest();
        d.advance(100);
        assertNotEquals(fresh, d.stateDigest());
        d.setDeviceState(STOP);
        d.reset();
        assertEquals(fresh, d.stateDigest(), "a reset device has its initial state");
        assertEquals(1, d.resets());
        assertEquals(List.of(RUNNING, VfioDeviceState.RUNNING_P2P, STOP, RUNNING), d.stateHistory());
        assertEquals(RUNNING, d.currentState());
    }

    @Test
    void theStateOfAClosedDeviceIsReleasedAndCallsFailWithEbadf() throws Exception {
        EmulatedVfioDevice d = new EmulatedVfioDevice("vf9", spec("stop-copy"), dmaA);
        VfioDataFd fd = d.setDeviceState(STOP_COPY);
        assertNotNull(fd);
        d.close();
        d.close();
        VfioException e = assertThrows(VfioException.class, () -> d.setDeviceState(STOP));
        assertEquals(dev.ferry.core.sys.Errno.EBADF, e.errno());
        try (Mapping b = Mapping.anonymous(PAGE)) {
            VfioException dead = assertThrows(VfioException.class, () -> fd.read(b.address(), PAGE));
            assertEquals(dev.ferry.core.sys.Errno.ENODEV, dead.errno(), "the session ended with the device");
        }
        fd.close();
    }

    @Test
    void contentDigestReadsExactlyTheBytesAskedFor() {
        try (Mapping m = Mapping.anonymous(2 * PAGE)) {
            long a = m.address();
            long b = a + PAGE;
            for (int i = 0; i < 20; i++) {
                NativeMemory.putByte(a + i, (byte) i);
                NativeMemory.putByte(b + i, (byte) i);
            }
            NativeMemory.putByte(b + 25, (byte) 1); // after the 20 bytes digested
            assertEquals(ContentDigest.of(a, 20), ContentDigest.of(b, 20));
            NativeMemory.putByte(b + 19, (byte) 7);
            assertNotEquals(ContentDigest.of(a, 20), ContentDigest.of(b, 20));
            assertNotEquals(ContentDigest.of(a, 19), ContentDigest.of(a, 20), "length counts");
            assertNotEquals(ContentDigest.record(1, 2, 20, a), ContentDigest.record(1, 3, 20, a), "the head counts");
        }
    }

    @Test
    void specFlagsParseBack() {
        for (String flags : List.of("", "stop-copy", "stop-copy,p2p,state=1M,initial=64K,seed=9",
                "pre-copy,no-dma-log,dirty-rate=0,pps=250,fault=fail-set:STOP_COPY,fault=slow-set:STOP:50",
                "no-migration,state=0")) {
            EmulatedVfSpec s = EmulatedVfSpec.parse(flags);
            assertEquals(s, EmulatedVfSpec.parse(s.toFlags()), flags + " -> " + s.toFlags());
        }
        assertEquals("stop-copy,p2p,pre-copy", EmulatedVfSpec.defaults().toFlags());
        assertEquals(250, EmulatedVfSpec.parse("pps=250").packetRate());
        assertEquals(EmulatedVfSpec.DEFAULT_PACKET_RATE, EmulatedVfSpec.defaults().packetRate());
        assertEquals(MigCapabilities.STOP_COPY_PRE_COPY, EmulatedVfSpec.parse("pre-copy").capabilities());
        for (String bad : List.of("pps=-1", "pps=x", "state=2G", "initial=8M", "bogus", "seed=", "fault=explode",
                "fault=fail-set", "fault=fail-set:ERROR", "fault=no-eof:STOP")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EmulatedVfSpec.parse(bad), bad);
            assertTrue(e.getMessage() != null && !e.getMessage().isEmpty());
        }
    }

    @Test
    void aReportWindowStartingInsideAPageStaysInsideTheBitmap() throws Exception {
        EmulatedVfioDevice d = emulated("stop-copy");
        d.dmaLoggingStart(PAGE, List.of(new dev.ferry.vfio.device.IovaRange(0, 1L << 20)));
        d.simulateDma(0, 3 * PAGE);
        Mapping bitmap = buffer(2 * PAGE);
        long guard = bitmap.address();
        long bits = guard + 64;
        NativeMemory.putLong(guard + 56, 0);
        d.dmaLoggingReport(PAGE + 2048, 4 * PAGE, PAGE, bits);
        assertEquals(0, NativeMemory.getLong(guard + 56), "the report wrote before the bitmap");
        assertEquals(List.of(0L, 1L), bits(bits, 4), "the page holding the window's start is bit 0");
    }

    @Test
    void dmaLoggingRefusesAPageSizeThatIsNoPowerOfTwo() throws Exception {
        // the kernel's core leaves this to the driver (mlx5 rounds it); the emulated device refuses
        EmulatedVfioDevice d = emulated("stop-copy");
        VfioException e = assertThrows(VfioException.class,
                () -> d.dmaLoggingStart(1000, List.of(new dev.ferry.vfio.device.IovaRange(0, 1000))));
        assertEquals(dev.ferry.core.sys.Errno.EINVAL, e.errno());
    }

    @Test
    void statisticsFollowTheDevice() throws Exception {
        EmulatedVfioDevice d = emulated("stop-copy,fault=slow-set:STOP:30");
        d.setDeviceState(STOP);
        d.setDeviceState(RUNNING);
        assertTrue(d.arcNanos().get(STOP) >= TimeUnit.MILLISECONDS.toNanos(30), "slow-set delays the arc into STOP");
        assertTrue(d.nanosInState().get(RUNNING) > 0);
        d.simulateDma(0, 100);
        assertEquals(100, d.dmaBytes());
        assertEquals(MigCapabilities.STOP_COPY_ONLY, d.spec().capabilities());
    }
}
