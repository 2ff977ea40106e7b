package dev.ferry.vfio.device;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.fsm.MigCapabilities;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.function.Executable;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What every part of the {@link VfioDeviceContractTest} suite stands on: two guest memories (the
 * source's and the destination's), the device a subclass opens on each, resources the suite
 * closes after each test, and the building blocks of a round trip (save, load, drain, write in
 * uneven pieces). The contract itself, and which devices keep it, is described there.
 */
public abstract class VfioDeviceContractFixture {
    /** 1 MiB and a ragged tail: the last chunk's length is no multiple of 8. */
    protected static final long STATE = (1L << 20) + 1005;
    protected static final long MEMORY = 32L << 20;
    protected static final int PAGE = 4096;

    /** Guest memory of the source and of the destination of a round trip. */
    protected GuestMemory memoryA;
    protected GuestMemory memoryB;
    protected DmaSpace dmaA;
    protected DmaSpace dmaB;
    private final List<AutoCloseable> owned = new ArrayList<>();

    /** Opens a device built from {@code spec} that DMAs into {@code dma}; the suite closes it. */
    protected abstract VfioDevice open(EmulatedVfSpec spec, DmaSpace dma) throws Exception;

    /** The emulated device behind {@code device}: observation and workload only, never the uAPI. */
    protected abstract EmulatedVfioDevice backing(VfioDevice device);

    /** Makes {@code device} write {@code length} bytes at {@code iova} by DMA. */
    protected void deviceDma(VfioDevice device, long iova, long length) {
        backing(device).simulateDma(iova, length);
    }

    /**
     * Flags every spec of this suite carries besides capabilities and state size; the default
     * keeps the device's own churn off so that state digests are deterministic.
     */
    protected String baseFlags() {
        return "dirty-rate=0";
    }

    static Stream<MigCapabilities> capabilitySets() {
        return Stream.of(MigCapabilities.STOP_COPY_ONLY, MigCapabilities.STOP_COPY_P2P,
                MigCapabilities.STOP_COPY_PRE_COPY, MigCapabilities.ALL);
    }

    static Stream<MigCapabilities> preCopySets() {
        return capabilitySets().filter(c -> c.hasAll(MigCapabilities.PRE_COPY));
    }

    @BeforeEach
    void createMemory() {
        memoryA = GuestMemory.ofSize(MEMORY);
        memoryB = GuestMemory.ofSize(MEMORY);
        dmaA = new GuestDmaSpace(memoryA);
        dmaB = new GuestDmaSpace(memoryB);
    }

    @AfterEach
    void closeAll() throws Exception {
        for (int i = owned.size() - 1; i >= 0; i--) {
            owned.get(i).close();
        }
        owned.clear();
        memoryA.close();
        memoryB.close();
    }

    // ------------------------------------------------------------------------------------------
    // Building blocks

    protected static String flags(MigCapabilities caps) {
        List<String> f = new ArrayList<>(List.of("stop-copy"));
        if (caps.hasAll(MigCapabilities.P2P)) {
            f.add("p2p");
        }
        if (caps.hasAll(MigCapabilities.PRE_COPY)) {
            f.add("pre-copy");
        }
        return String.join(",", f);
    }

    /** A spec of this suite: {@code flags}, then {@link #baseFlags()}, then the default state size. */
    protected EmulatedVfSpec spec(String flags) {
        return EmulatedVfSpec.parse("state=" + STATE + "," + baseFlags() + "," + flags);
    }

    protected EmulatedVfSpec spec(MigCapabilities caps) {
        return spec(flags(caps));
    }

    protected VfioDevice device(EmulatedVfSpec spec, DmaSpace dma) throws Exception {
        VfioDevice d = open(spec, dma);
        owned.add(d);
        return d;
    }

    protected <T extends AutoCloseable> T own(T resource) {
        owned.add(resource);
        return resource;
    }

    protected VfioDataFd own(VfioDataFd fd) {
        if (fd != null) {
            owned.add(fd);
        }
        return fd;
    }

    /** Native memory owned by the test (a stream buffer, a bitmap). */
    protected Mapping buffer(long length) {
        return own(Mapping.anonymous(length));
    }

    protected static VfioException failsWith(int errno, Executable call, String what) {
        VfioException e = assertThrows(VfioException.class, call, what);
        assertEquals(Errno.name(errno), Errno.name(e.errno()), what + ": " + e.getMessage());
        return e;
    }

    /** A device image in native memory. */
    protected static final class Image {
        /** Where the image lives; owned by the test. */
        public final Mapping memory;
        /** Bytes of image in {@link #memory}. */
        public long length;

        public Image(Mapping memory) {
            this.memory = memory;
        }

        public long address() {
            return memory.address();
        }
    }

    protected Image image() {
        return new Image(buffer(4 * STATE + (8L << 20)));
    }

    /**
     * Reads {@code fd} into {@code image} in pieces of {@code piece} bytes until it reports the
     * end (0) or, in PRE_COPY, nothing now ({@link VfioDataFd#NO_DATA}); returns that last answer.
     */
    protected static long drain(VfioDataFd fd, Image image, int piece) throws VfioException {
        while (true) {
            long room = image.memory.length() - image.length;
            assertTrue(room >= piece, "device image overflows the test buffer");
            long n = fd.read(image.address() + image.length, piece);
            if (n <= 0) {
                assertTrue(n == 0 || n == VfioDataFd.NO_DATA, "read answered " + n);
                return n;
            }
            assertTrue(n <= piece, "read returned more than asked");
            image.length += n;
        }
    }

    /** STOP_COPY through the device's own path, then everything until EOF; the device ends in STOP. */
    protected Image saveStopCopy(VfioDevice src, Image image, VfioDataFd precopyFd) throws VfioException {
        VfioDataFd fd = own(src.setDeviceState(STOP_COPY));
        if (precopyFd != null) {
            assertNull(fd, "a saving group continued into STOP_COPY must not open a second data fd");
            fd = precopyFd;
        }
        assertNotNull(fd, "STOP->STOP_COPY must return the data fd");
        assertEquals(0, drain(fd, image, 64 << 10), "STOP_COPY must end with read() == 0, not ENOMSG");
        src.setDeviceState(STOP);
        return image;
    }

    /** A whole image of {@code src}; with PRE_COPY, an initial pass and a changed device first. */
    protected Image save(VfioDevice src, int churnDuringPrecopy) throws VfioException {
        Image image = image();
        VfioDataFd pre = null;
        if (src.migrationFlags().hasAll(MigCapabilities.PRE_COPY)) {
            pre = own(src.setDeviceState(PRE_COPY));
            assertEquals(VfioDataFd.NO_DATA, drain(pre, image, 32 << 10));
            if (churnDuringPrecopy > 0) {
                backing(src).advance(churnDuringPrecopy);
                assertEquals(VfioDataFd.NO_DATA, drain(pre, image, 32 << 10));
                backing(src).advance(churnDuringPrecopy);
            }
        }
        return saveStopCopy(src, image, pre);
    }

    /** RESUMING, {@code length} bytes of {@code image} in uneven pieces, RESUMING→STOP. */
    protected void load(VfioDevice dst, Image image, long length) throws VfioException {
        VfioDataFd fd = own(dst.setDeviceState(RESUMING));
        assertNotNull(fd, "STOP->RESUMING must return the data fd");
        write(fd, image, length);
        dst.setDeviceState(STOP);
    }

    private static final int[] PIECES = {1, 7, 4096, (64 << 10) + 3, 13, 1 << 20, 100_003};

    /** Writes {@code length} bytes in uneven pieces, resubmitting what a short write left. */
    protected static void write(VfioDataFd fd, Image image, long length) throws VfioException {
        long done = 0;
        for (int i = 0; done < length; i++) {
            long n = Math.min(PIECES[i % PIECES.length], length - done);
            long wrote = fd.write(image.address() + done, n);
            assertTrue(wrote > 0 && wrote <= n, "write accepted " + wrote + " of " + n);
            done += wrote;
        }
    }

    /** Copies guest memory A into B, as RAM migration would before the device state is loaded. */
    protected void copyMemoryAtoB() {
        for (GuestRegion r : memoryA.regions()) {
            GuestRegion to = memoryB.region(r.name());
            NativeMemory.copy(r.hostAddress(0), to.hostAddress(0), r.size());
        }
    }
}
