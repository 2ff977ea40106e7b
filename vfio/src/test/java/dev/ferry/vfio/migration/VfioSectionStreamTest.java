package dev.ferry.vfio.migration;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import dev.ferry.migration.testing.TestVm;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.EOFException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

import static dev.ferry.vfio.migration.VfioStreamTag.CONFIG_LOAD_READY;
import static dev.ferry.vfio.migration.VfioStreamTag.CONFIG_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.DATA_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.END_OF_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.INIT_DATA_SENT;
import static dev.ferry.vfio.migration.VfioStreamTag.SETUP_STATE;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The VFIO section byte by byte, without the engine: the tags sit exactly where QEMU writes
 * them, a section saved on one side loads on the other, and the loader treats its input as
 * hostile — every malformed or out-of-place piece ends with an error naming the device.
 */
class VfioSectionStreamTest {
    static final long TAG_HIGH = 0xffffffffef100000L;
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    /** A machine with one emulated VF attached; the VF's state does not churn unless asked. */
    record Side(TestVm vm, EmulatedVfioDevice vf, VfioMigration migration) {
        VfioLiveHandler handler() {
            return migration.handler();
        }
    }

    private Side side(String name, String flags, boolean running, VfioMigration.Options options) {
        TestVm vm = TestVm.builder(name).ram(64 << 10).runState(running ? RunState.RUNNING : RunState.PRELAUNCH).build();
        open.add(vm);
        EmulatedVfioDevice vf = new EmulatedVfioDevice("vf0", EmulatedVfSpec.parse(flags), new GuestDmaSpace(vm.memory()));
        vm.machine().addDevice(vf);
        return new Side(vm, vf, VfioMigration.attach(vm.machine(), vf, options));
    }

    private Side side(String name, String flags, boolean running) {
        return side(name, flags, running, VfioMigration.Options.defaults());
    }

    /** A save stream that says whether switchover-ack is on, as the engine's does. */
    static final class Out implements SaveStream {
        final ByteArraySaveStream bytes = new ByteArraySaveStream();
        private final boolean ack;

        Out(boolean ack) {
            this.ack = ack;
        }

        @Override
        public void putU8(int v) {
            bytes.putU8(v);
        }

        @Override
        public void putBe16(int v) {
            bytes.putBe16(v);
        }

        @Override
        public void putBe32(int v) {
            bytes.putBe32(v);
        }

        @Override
        public void putBe64(long v) {
            bytes.putBe64(v);
        }

        @Override
        public void putBytes(byte[] src, int offset, int length) {
            bytes.putBytes(src, offset, length);
        }

        @Override
        public void putNative(long address, long length) {
            bytes.putNative(address, length);
        }

        @Override
        public long bytesWritten() {
            return bytes.bytesWritten();
        }

        @Override
        public boolean rateLimitReached() {
            return false;
        }

        @Override
        public boolean switchoverAck() {
            return ack;
        }

        byte[] toByteArray() {
            return bytes.toByteArray();
        }
    }

    /** The destination's engine, as far as a load handler sees it. */
    static final class Context implements LoadContext {
        final boolean ack;
        int approvals;

        Context(boolean ack) {
            this.ack = ack;
        }

        @Override
        public void approveSwitchover() {
            approvals++;
        }

        @Override
        public boolean switchoverAck() {
            return ack;
        }
    }

    /** The tags and DATA_STATE lengths in a section, e.g. [SETUP_STATE, END_OF_STATE] or [DATA_STATE:4096, ...]. */
    static List<String> layout(byte[] section) {
        ByteBuffer b = ByteBuffer.wrap(section);
        List<String> out = new ArrayList<>();
        while (b.hasRemaining()) {
            long tag = b.getLong();
            if (tag == DATA_STATE) {
                long n = b.getLong();
                b.position(b.position() + (int) n);
                out.add("DATA_STATE:" + n);
            } else if (tag == CONFIG_STATE) {
                int n = b.getInt();
                b.position(b.position() + n);
                out.add("CONFIG_STATE:" + n);
            } else {
                out.add(VfioStreamTag.name(tag));
            }
        }
        return out;
    }

    static long dataBytes(List<String> layout) {
        return layout.stream().filter(s -> s.startsWith("DATA_STATE:")).mapToLong(s -> Long.parseLong(s.substring(11)))
                .sum();
    }

    static byte[] tags(long... tags) {
        ByteBuffer b = ByteBuffer.allocate(tags.length * 8);
        for (long t : tags) {
            b.putLong(t);
        }
        return b.array();
    }

    @Test
    void tagsSitWhereQemuWritesThemAndTheSectionLoads() throws Exception {
        Side src = side("src", "stop-copy,p2p,pre-copy,state=128K,dirty-rate=0", true);
        VfioLiveHandler h = src.handler();
        List<byte[]> sections = new ArrayList<>();

        Out setup = new Out(true);
        h.saveSetup(setup);
        assertEquals(List.of("SETUP_STATE", "END_OF_STATE"), layout(setup.toByteArray()));
        assertEquals(PRE_COPY, src.vf().currentState());
        sections.add(setup.toByteArray());
        long stopCopyBefore = src.vf().stopCopyLength();
        assertTrue(h.pendingEstimate() >= 128 << 10, "initial data is pending: " + h.pendingEstimate());

        Out first = new Out(true);
        assertTrue(h.saveIterate(first), "all initial data fits one 1 MiB read and nothing changed since");
        List<String> l1 = layout(first.toByteArray());
        assertEquals(List.of("DATA_STATE:" + src.vf().savedBytes(), "INIT_DATA_SENT"), l1);
        sections.add(first.toByteArray());

        Out second = new Out(true);
        assertTrue(h.saveIterate(second));
        assertEquals(List.of("END_OF_STATE"), layout(second.toByteArray()), "ENOMSG sends nothing, INIT_DATA_SENT once");
        sections.add(second.toByteArray());
        assertEquals(0, h.pendingEstimate());
        assertEquals(src.vf().stopCopyLength(), h.pendingExact(), "exact = MIG_DATA_SIZE once pre-copy is empty");
        assertTrue(src.vf().stopCopyLength() < stopCopyBefore);

        src.vm().machine().vmStop(RunState.FINISH_MIGRATE);
        assertEquals(List.of(RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY), src.vf().stateHistory());
        long precopy = src.vf().savedBytes();
        Out complete = new Out(true);
        h.saveComplete(complete);
        List<String> lc = layout(complete.toByteArray());
        assertEquals("END_OF_STATE", lc.get(lc.size() - 1));
        assertTrue(lc.subList(0, lc.size() - 1).stream().allMatch(s -> s.startsWith("DATA_STATE:")), lc::toString);
        assertEquals(src.vf().savedBytes() - precopy, dataBytes(lc));
        sections.add(complete.toByteArray());

        Out config = new Out(true);
        h.saveState(config);
        assertEquals(List.of("CONFIG_STATE:0", "END_OF_STATE"), layout(config.toByteArray()));
        sections.add(config.toByteArray());

        h.saveCleanup(true);
        assertEquals(List.of(RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP), src.vf().stateHistory());

        Side dst = side("dst", "stop-copy,p2p,pre-copy,state=128K,dirty-rate=0", false);
        Context ctx = new Context(true);
        dst.handler().loadSetup(ctx);
        assertEquals(RESUMING, dst.vf().currentState());
        for (byte[] s : sections) {
            dst.handler().loadState(new ByteArrayLoadStream(s), 1);
        }
        assertEquals(1, ctx.approvals, "INIT_DATA_SENT approved switchover once");
        dst.handler().loadCleanup(true);
        dst.vm().machine().vmStart();
        assertEquals(List.of(RUNNING, RUNNING_P2P, STOP, RESUMING, STOP, RUNNING_P2P, RUNNING), dst.vf().stateHistory());
        assertEquals(src.vf().stateDigest(), dst.vf().stateDigest());
        assertEquals(src.vf().savedBytes(), dst.migration().stats().loadedBytes());
    }

    @Test
    void withoutSwitchoverAckNoInitDataSentIsWritten() throws Exception {
        Side src = side("src", "stop-copy,pre-copy,state=128K,dirty-rate=0", true);
        src.handler().saveSetup(new Out(false));
        for (int i = 0; i < 3; i++) {
            Out o = new Out(false);
            src.handler().saveIterate(o);
            assertFalse(layout(o.toByteArray()).contains("INIT_DATA_SENT"));
            assertEquals("END_OF_STATE", layout(o.toByteArray()).get(layout(o.toByteArray()).size() - 1));
        }
        src.handler().saveCleanup(false);
    }

    @Test
    void aStopCopyOnlyDeviceSendsNothingBeforeTheVmStops() throws Exception {
        Side src = side("src", "stop-copy,state=128K,dirty-rate=0", true);
        VfioLiveHandler h = src.handler();
        assertFalse(h.switchoverAckNeeded());
        Out setup = new Out(true);
        h.saveSetup(setup);
        assertEquals(List.of("SETUP_STATE", "END_OF_STATE"), layout(setup.toByteArray()));
        Out it = new Out(true);
        assertTrue(h.saveIterate(it));
        assertEquals(List.of("END_OF_STATE"), layout(it.toByteArray()));
        assertEquals(0, h.pendingEstimate());
        assertEquals(src.vf().stopCopyLength(), h.pendingExact());
        assertEquals(List.of(RUNNING), src.vf().stateHistory());
        h.saveCleanup(false);
    }

    @Test
    void configStateRoundTripsAndAProviderMayRefuseIt() throws Exception {
        byte[] cfg = {1, 2, 3, 4, 5};
        VfioDeviceConfig provider = new VfioDeviceConfig() {
            @Override
            public byte[] save() {
                return cfg;
            }

            @Override
            public void load(byte[] state) {
                if (state.length != 5) {
                    throw new IllegalArgumentException("config of " + state.length + " bytes, expected 5");
                }
            }
        };
        Side src = side("src", "stop-copy,state=64K", true, VfioMigration.Options.defaults().withConfig(provider));
        Out o = new Out(false);
        src.handler().saveState(o);
        assertEquals(List.of("CONFIG_STATE:5", "END_OF_STATE"), layout(o.toByteArray()));
        Side dst = side("dst", "stop-copy,state=64K", false, VfioMigration.Options.defaults().withConfig(provider));
        dst.handler().loadSetup(new Context(false));
        dst.handler().loadState(new ByteArrayLoadStream(o.toByteArray()), 1);

        ByteBuffer bad = ByteBuffer.allocate(8 + 4 + 3 + 8).putLong(CONFIG_STATE).putInt(3).put(new byte[3])
                .putLong(END_OF_STATE);
        assertRefused(dst, bad.array(), "vf0: config state refused: config of 3 bytes, expected 5");
        Side bare = side("bare", "stop-copy,state=64K", false);
        bare.handler().loadSetup(new Context(false));
        assertRefused(bare, o.toByteArray(), "vf0: the stream carries 5 bytes of config state, but this device was"
                + " attached without a config provider");
    }

    private static void assertRefused(Side side, byte[] stream, String message) {
        MigrationException e = assertThrows(MigrationException.class,
                () -> side.handler().loadState(new ByteArrayLoadStream(stream), 1));
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @Test
    void hostileInputIsRefusedNamingTheDevice() throws Exception {
        Side dst = side("dst", "stop-copy,p2p,pre-copy,state=64K", false);
        dst.handler().loadSetup(new Context(false));
        assertRefused(dst, tags(TAG_HIGH | 7), "vf0: unknown VFIO migration tag 0xffffffffef100007");
        assertRefused(dst, tags(0), "vf0: unknown VFIO migration tag 0x0000000000000000");
        assertRefused(dst, tags(DATA_STATE, VfioLoadSide.MAX_DATA_BLOCK + 1),
                "vf0: DATA_STATE block of " + (VfioLoadSide.MAX_DATA_BLOCK + 1) + " bytes, at most");
        assertRefused(dst, tags(DATA_STATE, -1L), "vf0: DATA_STATE block of 18446744073709551615 bytes");
        assertRefused(dst, tags(INIT_DATA_SENT), "vf0: INIT_DATA_SENT arrived but switchover-ack is not in use");
        assertRefused(dst, tags(CONFIG_LOAD_READY), "vf0: CONFIG_LOAD_READY belongs to multifd device-state transfer");
        assertRefused(dst, tags(SETUP_STATE, DATA_STATE), "vf0: SETUP_STATE followed by DATA_STATE, expected END_OF_STATE");
        ByteBuffer big = ByteBuffer.allocate(12).putLong(CONFIG_STATE).putInt(VfioDeviceConfig.MAX_BYTES + 1);
        assertRefused(dst, big.array(), "vf0: config state of " + (VfioDeviceConfig.MAX_BYTES + 1) + " bytes");
        ByteBuffer noEnd = ByteBuffer.allocate(20).putLong(CONFIG_STATE).putInt(0).putLong(DATA_STATE);
        assertRefused(dst, noEnd.array(), "vf0: config state followed by DATA_STATE, expected END_OF_STATE");
        // device data that is not this device's format: the device refuses the write
        ByteBuffer garbage = ByteBuffer.allocate(16 + 64).putLong(DATA_STATE).putLong(64);
        assertRefused(dst, garbage.array(), "vf0: write(data_fd): EINVAL");
    }

    @Test
    void aTruncatedBlockIsAnEndOfStreamNotAHang() throws Exception {
        Side dst = side("dst", "stop-copy,state=64K", false);
        dst.handler().loadSetup(new Context(false));
        ByteBuffer b = ByteBuffer.allocate(16 + 10).putLong(DATA_STATE).putLong(4096);
        assertThrows(EOFException.class, () -> dst.handler().loadState(new ByteArrayLoadStream(b.array()), 1));
    }

    @Test
    void initDataSentFromADeviceWithoutPrecopyIsRefusedEvenWithAck() throws Exception {
        Side dst = side("dst", "stop-copy,p2p,state=64K", false);
        Context ctx = new Context(true);
        dst.handler().loadSetup(ctx);
        assertRefused(dst, tags(INIT_DATA_SENT), "(this device has no PRE_COPY)");
        assertEquals(0, ctx.approvals);
    }

    /**
     * The emulated device digests its 20-byte control record with {@code MemoryDigest}, whose
     * 32-byte strides once read past the payload into whatever the previous record left in the
     * buffer: a chunk whose first 64 bytes the device had changed made a healthy migration fail
     * as "corrupt data", now and then. Churned until chunk 0's first block changed, the stream
     * must load.
     */
    @Test
    void aControlRecordAfterAChangedChunkLoads() throws Exception {
        Side src = side("src", "stop-copy,state=64K,dirty-rate=0", true);
        long first = src.vf().stateDigest();
        src.vf().advance(20_000);
        assertTrue(src.vf().stateDigest() != first);
        src.handler().saveSetup(new Out(false));
        src.vm().machine().vmStop(RunState.FINISH_MIGRATE);
        Out complete = new Out(false);
        src.handler().saveComplete(complete);
        src.handler().saveCleanup(true);
        Side dst = side("dst", "stop-copy,state=64K,dirty-rate=0", false);
        dst.handler().loadSetup(new Context(false));
        dst.handler().loadState(new ByteArrayLoadStream(complete.toByteArray()), 1);
        dst.handler().loadCleanup(true);
        dst.vm().machine().vmStart();
        assertEquals(src.vf().stateDigest(), dst.vf().stateDigest());
    }

    /** A second incoming migration after a failed one: the half-loaded image is discarded by a reset. */
    @Test
    void aFailedLoadLeavesNothingBehindForTheNextOne() throws Exception {
        Side src = side("src", "stop-copy,state=64K,dirty-rate=0", false);
        src.handler().saveSetup(new Out(false));
        src.vm().machine().vmStop(RunState.FINISH_MIGRATE);
        Out complete = new Out(false);
        src.handler().saveComplete(complete);
        src.handler().saveCleanup(true);

        Side dst = side("dst", "stop-copy,state=64K,dirty-rate=0", false);
        dst.handler().loadSetup(new Context(false));
        // the first 100 bytes of the device's data, then the stream (and the source) went away
        ByteBuffer half = ByteBuffer.allocate(16 + 100 + 8).putLong(DATA_STATE).putLong(100)
                .put(complete.toByteArray(), 16, 100).putLong(END_OF_STATE);
        dst.handler().loadState(new ByteArrayLoadStream(half.array()), 1);
        dst.handler().loadCleanup(false);
        assertEquals(RESUMING, dst.vf().currentState(), "QEMU leaves a failed destination's device as it is");

        dst.handler().loadSetup(new Context(false));
        assertEquals(1, dst.vf().resets());
        assertEquals(List.of(RUNNING, STOP, RESUMING, RUNNING, STOP, RESUMING), dst.vf().stateHistory());
        dst.handler().loadState(new ByteArrayLoadStream(complete.toByteArray()), 1);
        dst.handler().loadCleanup(true);
        dst.vm().machine().vmStart();
        assertEquals(src.vf().stateDigest(), dst.vf().stateDigest());
    }

    @Test
    void deviceDataBeforeLoadSetupIsRefused() throws Exception {
        Side dst = side("dst", "stop-copy,state=64K", false);
        ByteBuffer b = ByteBuffer.allocate(16 + 8).putLong(DATA_STATE).putLong(8);
        assertRefused(dst, b.array(), "vf0: device data arrived before load setup (the device is in RUNNING");
        assertEquals(List.of(RUNNING), dst.vf().stateHistory());
    }

    /** A device taking at most 1000 bytes per write: the loader resumes after every short write. */
    @Test
    void shortWritesAreResumed() throws Exception {
        Side src = side("src", "stop-copy,state=128K,dirty-rate=0", false);
        src.handler().saveSetup(new Out(false));
        src.vm().machine().vmStop(RunState.FINISH_MIGRATE);
        Out complete = new Out(false);
        src.handler().saveComplete(complete);
        src.handler().saveCleanup(true);

        TestVm vm = TestVm.builder("dst").ram(64 << 10).build();
        open.add(vm);
        EmulatedVfioDevice vf = new EmulatedVfioDevice("vf0", EmulatedVfSpec.parse("stop-copy,state=128K,dirty-rate=0"),
                new GuestDmaSpace(vm.memory()));
        vm.machine().addDevice(vf);
        int[] writes = {0};
        VfioMigration m = VfioMigration.attach(vm.machine(), new RecordingVfioDevice(vf, new ArrayList<>(),
                fd -> new ShortWrites(fd, 1000, writes)));
        m.handler().loadSetup(new Context(false));
        m.handler().loadState(new ByteArrayLoadStream(complete.toByteArray()), 1);
        m.handler().loadCleanup(true);
        vm.machine().vmStart();
        assertEquals(src.vf().stateDigest(), vf.stateDigest());
        assertTrue(writes[0] >= src.vf().savedBytes() / 1000, "writes: " + writes[0]);
    }

    @Test
    void aDeviceThatTakesNothingFailsTheLoadInsteadOfSpinning() throws Exception {
        TestVm vm = TestVm.builder("dst").ram(64 << 10).build();
        open.add(vm);
        EmulatedVfioDevice vf = new EmulatedVfioDevice("vf0", EmulatedVfSpec.parse("stop-copy,state=64K"),
                new GuestDmaSpace(vm.memory()));
        vm.machine().addDevice(vf);
        VfioMigration m = VfioMigration.attach(vm.machine(), new RecordingVfioDevice(vf, new ArrayList<>(),
                fd -> new ShortWrites(fd, 0, new int[1])));
        m.handler().loadSetup(new Context(false));
        ByteBuffer b = ByteBuffer.allocate(16 + 64).putLong(DATA_STATE).putLong(64);
        MigrationException e = assertThrows(MigrationException.class,
                () -> m.handler().loadState(new ByteArrayLoadStream(b.array()), 1));
        assertTrue(e.getMessage().contains("vf0: write(data_fd) accepted 0 of 64 bytes"), e.getMessage());
    }

    /** A resuming data fd that accepts at most {@code max} bytes per write (0: none). */
    static final class ShortWrites implements VfioDataFd {
        private final VfioDataFd inner;
        private final long max;
        private final int[] writes;

        ShortWrites(VfioDataFd inner, long max, int[] writes) {
            this.inner = inner;
            this.max = max;
            this.writes = writes;
        }

        @Override
        public long read(long address, long length) throws VfioException {
            return inner.read(address, length);
        }

        @Override
        public long write(long address, long length) throws VfioException {
            writes[0]++;
            return max == 0 ? 0 : inner.write(address, Math.min(max, length));
        }

        @Override
        public PrecopyInfo precopyInfo() throws VfioException {
            return inner.precopyInfo();
        }

        @Override
        public void close() {
            inner.close();
        }
    }
}
