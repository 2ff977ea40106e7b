package dev.ferry.virtio.state;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.blk.DiskFixture;
import dev.ferry.virtio.blk.VirtioBlk;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.EOFException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static dev.ferry.virtio.blk.DiskFixture.S_OK;
import static dev.ferry.virtio.blk.DiskFixture.T_IN;
import static dev.ferry.virtio.blk.DiskFixture.T_OUT;
import static dev.ferry.virtio.transport.MmioGuest.buf;
import static dev.ferry.virtio.transport.MmioGuest.data;
import static dev.ferry.virtio.transport.MmioGuest.small;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The incoming {@code virtio} field treated as hostile (QEMU's virtio_load checks, in its words):
 * each bad stream is refused with a MigrationException that says what was wrong, and the
 * destination device is left exactly as it was; every truncation ends in EOF or a refusal. An
 * avail index more than a ring ahead in guest RAM loads, with the device broken, as in QEMU.
 */
@Timeout(120)
class VirtioStateLoadTest {
    static final long FEATURES = DiskFixture.FEATURES;
    static final int SIZE = 64;
    static final QueueConfig RING = MmioGuest.layout(0, SIZE, FEATURES);

    @TempDir
    Path dir;
    MmioGuest src;
    MmioGuest dst;
    byte[] blob;
    Map<String, Object> before;

    @BeforeEach
    void setUp() throws Exception {
        Path img = DiskFixture.image(dir, "shared.img", 1 << 20);
        src = DiskFixture.disk(img, Map.of(), false);
        DriverQueue q = src.bringUp(FEATURES, SIZE);
        for (int i = 0; i < 3; i++) {
            assertEquals(S_OK, DiskFixture.run(src, q, i == 1 ? T_IN : T_OUT, i,
                    i == 1 ? List.of() : List.of(buf(data(0), 512)),
                    i == 1 ? List.of(buf(data(1), 512)) : List.of()).status());
        }
        src.machine.vmStop(RunState.FINISH_MIGRATE);
        blob = StateBlob.save(src);
        dst = DiskFixture.disk(img, Map.of(), true);
        StateBlob.copyRam(src, dst);
        before = snapshot(dst);
    }

    @AfterEach
    void tearDown() {
        dst.close();
        src.close();
    }

    static Map<String, Object> snapshot(MmioGuest g) {
        Map<String, Object> m = new LinkedHashMap<>(g.registerSnapshot(1));
        m.putAll(g.describe());
        m.put("parked", ((VirtioBlk) g.transport.model()).parkedRequests());
        m.put("features", g.transport.guestFeatures());
        m.put("broken", String.valueOf(g.transport.brokenReason()));
        return m;
    }

    void refused(byte[] stream, String expected) {
        MigrationException e = assertThrows(MigrationException.class, () -> StateBlob.load(dst, stream));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertEquals(before, snapshot(dst), "a refused load leaves the device as it was");
    }

    int q0() {
        return StateBlob.queueAt(blob, 0);
    }

    @Test
    void theValidStreamLoads() throws Exception {
        StateBlob.load(dst, blob);
        assertEquals(src.describe().get("queues"), dst.describe().get("queues"));
    }

    @Test
    void tooManyQueuesForTheFormat() {
        refused(StateBlob.putBe32(blob, StateBlob.nqueuesAt(blob), 1025), "Invalid number of virtqueues: 0x401");
    }

    @Test
    void moreQueuesThanTheDeviceHas() {
        refused(StateBlob.putBe32(blob, StateBlob.nqueuesAt(blob), 2), "2 virtqueues, this device has 1");
    }

    @Test
    void queueSizeNotAPowerOfTwoOrAboveTheMaximum() {
        refused(StateBlob.putBe32(blob, q0(), 100), "VQ 0 size 0x64 is not a power of two up to 0x100");
        refused(StateBlob.putBe32(blob, q0(), 512), "VQ 0 size 0x200 is not a power of two up to 0x100");
        refused(StateBlob.putBe32(blob, q0(), 0), "VQ 0 size 0x0");
    }

    @Test
    void alignmentOtherThan4096() {
        refused(StateBlob.putBe32(blob, q0() + 4, 8192), "VQ 0 alignment 8192");
    }

    /** virtio-mmio's own copy of a ring address (extra_state) must agree with the virtio/virtqueues one. */
    @Test
    void transportStateDisagreeingWithTheQueueState() {
        // extra_state body: virtio_mmio/state header (23) | features (8) | vq0: num (2) | enabled (1) | desc (8) | avail (8)
        int availLow = StateBlob.subsectionBody(blob, "virtio/extra_state") + 23 + 8 + 2 + 1 + 8;
        refused(StateBlob.putBe32(blob, availLow, 0x12340), "transport state");
    }

    @Test
    void descriptorAddressZeroWithAnIndex() {
        refused(StateBlob.putBe64(blob, q0() + 8, 0), "VQ 0 address 0x0 inconsistent with Host index 0x3");
    }

    @Test
    void configSpaceLargerThanTheWindow() {
        refused(StateBlob.putBe32(blob, StateBlob.CONFIG_LEN, 0xf01), "config space of 3841 bytes");
        refused(StateBlob.putBe32(blob, StateBlob.CONFIG_LEN, -1), "config space of 4294967295 bytes");
    }

    @Test
    void featuresTheDeviceDoesNotOffer() {
        int at = StateBlob.subsectionBody(blob, "virtio/64bit_features");
        long features = ByteBuffer.wrap(blob).getLong(at);
        refused(StateBlob.putBe64(blob, at, features | 1), String.format("Features 0x%x unsupported", features | 1));
        refused(StateBlob.putBe64(blob, at, features | 1L << 40), "unsupported");
    }

    @Test
    void unknownSubsection() {
        byte[] bogus = StateBlob.subsectionBytes("virtio/bogus", 1, new byte[] {1});
        refused(StateBlob.splice(blob, blob.length, blob.length, bogus), "unknown subsection 'virtio/bogus'");
        int started = StateBlob.subsection(blob, "virtio/started");
        refused(StateBlob.splice(blob, started, started, bogus), "unknown subsection 'virtio/bogus'");
    }

    @Test
    void missingVirtqueuesOrExtraState() {
        int vq = StateBlob.subsection(blob, "virtio/virtqueues");
        int vqEnd = StateBlob.subsectionBody(blob, "virtio/virtqueues") + 1024 * 16;
        refused(StateBlob.splice(blob, vq, vqEnd, new byte[0]), "lacks the virtio/virtqueues subsection");
        int es = StateBlob.subsection(blob, "virtio/extra_state");
        int esEnd = StateBlob.subsectionBody(blob, "virtio/extra_state") + 8 + 1024 * 27;
        refused(StateBlob.splice(blob, es, esEnd, new byte[0]), "lacks the virtio/extra_state subsection");
    }

    /** A parked request in the device part, then a refusal: the model must not keep it. */
    @Test
    void refusedLoadDropsTheDevicePartItRead() {
        byte[] withParked = StateBlob.withDevicePart(blob, StateBlob.parkedRequest(0, 0,
                new long[][] {{small(0), 16}}, new long[][] {{small(1), 1}}));
        byte[] bogus = StateBlob.subsectionBytes("virtio/bogus", 1, new byte[0]);
        refused(StateBlob.splice(withParked, withParked.length, withParked.length, bogus), "unknown subsection");
    }

    @Test
    void moreInUseThanTheQueueHolds() {
        dst.mem.writeU16(SplitRing.usedIdx(RING.usedGpa()), (3 - SIZE - 1) & 0xffff);
        refused(blob, "VQ 0 size 0x40 < last_avail_idx 0x3 - used_idx 0xffc2");
    }

    @Test
    void availIndexMoreThanARingAheadLoadsBroken() throws Exception {
        dst.mem.writeU16(SplitRing.availIdx(RING.availGpa()), 3 + SIZE + 1);
        StateBlob.load(dst, blob);
        assertTrue((dst.status() & Virtio.STATUS_NEEDS_RESET) != 0);
        String reason = dst.transport.brokenReason();
        assertNotNull(reason);
        assertTrue(reason.contains("VQ 0 size 0x40 Guest index 0x44 inconsistent with Host index 0x3: delta 0x41"),
                reason);
        assertTrue((dst.read(0x060) & Virtio.ISR_CONFIG) != 0, "the driver is told (config interrupt)");

        dst.machine.vmStart();
        dst.awaitInterrupt();
        dst.write(0x070, 0);
        DriverQueue q = dst.bringUp(FEATURES, SIZE);
        assertEquals(S_OK, DiskFixture.run(dst, q, T_IN, 0, List.of(), List.of(buf(data(0), 512))).status(),
                "a reset and a new negotiation make it work");
    }

    /**
     * Every prefix of a valid state: EOF or a refusal, never another exception, and the device
     * unchanged — except a prefix that ends exactly before an optional trailing subsection, which
     * is a whole state (QEMU loads it too).
     */
    @Test
    void everyTruncationIsEofOrARefusal() throws Exception {
        int started = StateBlob.subsection(blob, "virtio/started");
        assertTrue(started > 0);
        Set<Integer> loaded = new HashSet<>();
        Map<String, Object> baseline = before;
        for (int n = 0; n < blob.length; n++) {
            byte[] prefix = Arrays.copyOf(blob, n);
            try {
                StateBlob.load(dst, prefix);
                loaded.add(n);
                baseline = snapshot(dst);
            } catch (EOFException | MigrationException e) {
                if (n % 97 == 0 || n < 400) {
                    assertEquals(baseline, snapshot(dst), "prefix of " + n + " bytes changed the device");
                }
            }
        }
        assertEquals(Set.of(started), loaded, "only the prefix without virtio/started is a whole state");
    }
}
