package dev.ferry.virtio.transport;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioMmio;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import static dev.ferry.virtio.transport.MmioGuest.buf;
import static dev.ferry.virtio.transport.MmioGuest.small;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The virtio-mmio v2 transport as a driver meets it (transport-mmio.tex, content.tex 2.1/3.1;
 * QEMU's virtio-mmio.c where the specification leaves a choice): identification, feature
 * negotiation, queue registers, notifications, interrupts, config space and reset, all through
 * 32-bit register accesses on the machine's MMIO bus and rings in guest RAM.
 */
@Timeout(60)
class VirtioMmioTest {
    static final long V1 = Virtio.bit(Virtio.F_VERSION_1);
    static final long ECHO = Virtio.bit(EchoModel.F_ECHO);
    static final long INDIRECT = Virtio.bit(Virtio.F_INDIRECT_DESC);
    static final long EVENT_IDX = Virtio.bit(Virtio.F_EVENT_IDX);

    EchoModel model;
    MmioGuest g;

    @BeforeEach
    void setUp() throws Exception {
        model = new EchoModel();
        g = MmioGuest.running("vm", model);
    }

    @AfterEach
    void tearDown() {
        g.close();
    }

    /** One echo request: 8 bytes out, 8 bytes of room; returns its head. */
    static int echo(MmioGuest g, DriverQueue q, String text) {
        g.writeBytes(small(10), text.getBytes(StandardCharsets.US_ASCII));
        return q.add(List.of(buf(small(10), 8)), List.of(buf(small(11), 8)), false);
    }

    static void assertEchoed(MmioGuest g, DriverQueue q, int head, String text) throws InterruptedException {
        DriverQueue.Used u = g.awaitUsed(q);
        assertEquals(head, u.id());
        assertEquals(8, u.length());
        assertArrayEquals(text.getBytes(StandardCharsets.US_ASCII), g.readBytes(small(11), 8));
    }

    @Test
    void identifiesAsVirtioMmioVersion2() {
        assertEquals(0x74726976L, g.read(0x000), "MagicValue 'virt'");
        assertEquals(2, g.read(0x004), "Version (modern)");
        assertEquals(EchoModel.DEVICE_ID, g.read(0x008));
        assertEquals(VirtioMmio.VENDOR_ID, g.read(0x00c));
        assertEquals(0xffffffffL, g.read(0x0b0), "no shared memory regions");
    }

    @Test
    void deviceFeaturesBySelectWord() {
        g.write(0x014, 0);
        assertEquals(INDIRECT | EVENT_IDX | ECHO, g.read(0x010));
        g.write(0x014, 1);
        assertEquals(V1 >>> 32, g.read(0x010));
        g.write(0x014, 2);
        assertEquals(0, g.read(0x010), "no feature words beyond 64 bits");
    }

    @Test
    void featuresOkRefusedForAFeatureNotOffered() {
        assertFalse(g.negotiate(V1 | Virtio.bit(5)));
        assertEquals(0, g.status() & Virtio.STATUS_FEATURES_OK, "FEATURES_OK stays clear on re-read");
        g.writeDriverFeatures(V1 | ECHO);
        g.write(0x070, g.status() | Virtio.STATUS_FEATURES_OK);
        assertTrue((g.status() & Virtio.STATUS_FEATURES_OK) != 0, "a corrected set is accepted");
        assertEquals(V1 | ECHO, g.transport.guestFeatures());
    }

    @Test
    void featuresOkRefusedWithoutVersion1() {
        assertFalse(g.negotiate(ECHO | INDIRECT));
        assertEquals(0, g.status() & Virtio.STATUS_FEATURES_OK);
        assertEquals(0, g.transport.guestFeatures());
    }

    @Test
    void driverFeatureWritesAfterFeaturesOkAreIgnored() {
        assertTrue(g.negotiate(V1));
        g.writeDriverFeatures(V1 | EVENT_IDX | ECHO);
        g.write(0x070, g.status() | Virtio.STATUS_FEATURES_OK);
        assertEquals(V1, g.transport.guestFeatures());
    }

    @Test
    void queueNumMaxPerQueueAndZeroBeyond() {
        for (int q = 0; q < EchoModel.QUEUES; q++) {
            g.write(0x030, q);
            assertEquals(EchoModel.MAX_SIZE, g.read(0x034));
            assertEquals(EchoModel.MAX_SIZE, g.read(0x038), "QueueNum starts at the maximum");
        }
        g.write(0x030, EchoModel.QUEUES);
        assertEquals(0, g.read(0x034), "QueueNumMax 0: no such queue");
    }

    @ParameterizedTest
    @CsvSource({"48, size 48 is not a power of two", "128, size 128 is not a power of two up to 64", "0, size 0"})
    void badQueueSizeNeedsReset(int size, String reason) {
        assertTrue(g.negotiate(V1));
        QueueConfig c = MmioGuest.layout(0, 64, V1);
        g.write(0x030, 0);
        g.write(0x038, size);
        g.writeQueueAddresses(c.descGpa(), c.availGpa(), c.usedGpa());
        g.write(0x044, 1);
        assertEquals(0, g.read(0x044), "the queue is not ready");
        assertTrue((g.status() & Virtio.STATUS_NEEDS_RESET) != 0);
        assertTrue(g.transport.brokenReason().contains(reason), g.transport.brokenReason());
    }

    @ParameterizedTest
    @CsvSource({"desc, 8, descriptor table at 0x10008 is not 16-byte aligned",
                "desc, 16777200, is not in RAM",
                "avail, 1, available ring at 0x10101 is not 2-byte aligned",
                "avail, 16777000, is not in RAM",
                "used, 2, used ring at 0x1012a is not 4-byte aligned",
                "used, 17000000, is not in RAM"})
    void ringOutsideRamOrMisalignedNeedsResetAtQueueReady(String area, long shift, String reason) {
        assertTrue(g.negotiate(V1));
        QueueConfig c = MmioGuest.layout(0, 16, V1);
        long desc = c.descGpa() + (area.equals("desc") ? shift : 0);
        long avail = c.availGpa() + (area.equals("avail") ? shift : 0);
        long used = c.usedGpa() + (area.equals("used") ? shift : 0);
        g.write(0x030, 0);
        g.write(0x038, 16);
        g.writeQueueAddresses(desc, avail, used);
        g.write(0x044, 1);
        assertEquals(0, g.read(0x044));
        assertTrue((g.status() & Virtio.STATUS_NEEDS_RESET) != 0);
        assertTrue(g.transport.brokenReason().contains(reason), g.transport.brokenReason());
    }

    @Test
    void queueRegistersAreFrozenWhileReady() throws Exception {
        assertTrue(g.negotiate(V1));
        DriverQueue q = g.setupQueue(0, 16);
        Map<String, Long> before = g.registerSnapshot(1);
        g.write(0x030, 0);
        g.write(0x038, 8);
        g.writeQueueAddresses(0x200000, 0x210000, 0x220000);
        g.write(0x044, 1);
        assertEquals(before, g.registerSnapshot(1));
        g.driverOk();
        int head = echo(g, q, "frozen!!");
        g.kick(0);
        assertEchoed(g, q, head, "frozen!!");
    }

    @Test
    void kicksBeforeDriverOkAreDroppedAndServedAfter() throws Exception {
        assertTrue(g.negotiate(V1));
        DriverQueue q = g.setupQueue(0, 16);
        int head = echo(g, q, "too soon");
        g.kick(0);
        g.settle();
        assertNull(q.pollUsed(), "nothing processed before DRIVER_OK");
        assertEquals(0, model.notifications.get(), "the kick never reached the device");
        g.driverOk();
        g.kick(0);
        assertEchoed(g, q, head, "too soon");
        assertEquals(1, model.starts.get());
    }

    @Test
    void interruptStatusAndAcknowledge() throws Exception {
        DriverQueue q = g.bringUp(V1, 16);
        assertFalse(g.lineRaised());
        int head = echo(g, q, "irq test");
        g.kick(0);
        assertEchoed(g, q, head, "irq test");
        g.awaitInterrupt();
        assertEquals(Virtio.ISR_QUEUE, g.read(0x060), "used-buffer bit");
        g.write(0x064, Virtio.ISR_QUEUE);
        model.changeConfig();
        assertEquals(Virtio.ISR_QUEUE | Virtio.ISR_CONFIG, g.read(0x060), "a config change sets both bits, as QEMU does");
        g.write(0x064, Virtio.ISR_QUEUE);
        assertEquals(Virtio.ISR_CONFIG, g.read(0x060));
        assertTrue(g.lineRaised(), "a bit is still set: the line stays up");
        g.write(0x064, Virtio.ISR_CONFIG);
        assertEquals(0, g.read(0x060));
        assertFalse(g.lineRaised(), "all bits acknowledged: the line drops");
    }

    @Test
    void configChangeIsSignalledOnlyAfterDriverOk() throws Exception {
        g.bringUp(V1, 16); // the model gets its context
        g.write(0x070, 0);
        assertTrue(g.negotiate(V1));
        long gen = g.read(0x0fc);
        model.changeConfig();
        assertEquals(gen, g.read(0x0fc), "no generation change before DRIVER_OK");
        assertEquals(0, g.read(0x060));
        assertFalse(g.lineRaised());
        assertEquals(0x12, g.read(0x100, 1), "the config itself changed");
        g.setupQueue(0, 16);
        g.driverOk();
        model.changeConfig();
        assertEquals(gen + 1, g.read(0x0fc));
        assertEquals(Virtio.ISR_QUEUE | Virtio.ISR_CONFIG, g.read(0x060));
        assertTrue(g.lineRaised());
    }

    @Test
    void driverOkWithoutFeaturesOkNeedsReset() throws Exception {
        g.write(0x070, Virtio.STATUS_ACKNOWLEDGE);
        g.write(0x070, Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER);
        g.writeDriverFeatures(V1);
        g.write(0x070, Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_DRIVER_OK);
        assertEquals(Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_NEEDS_RESET, g.status());
        assertTrue(g.transport.brokenReason().contains("DRIVER_OK without FEATURES_OK"));
        g.settle();
        assertEquals(0, model.starts.get(), "the device never started");
    }

    @Test
    void aDeviceThatCannotStartAnswersDriverOkWithNeedsReset() throws Exception {
        model.refuseStart = "the back-end is not connected";
        assertTrue(g.negotiate(V1 | ECHO));
        g.setupQueue(0, 16);
        g.driverOk(); // the guest's register write itself does not fail
        g.settle();
        assertTrue((g.status() & Virtio.STATUS_NEEDS_RESET) != 0, "status " + g.status());
        assertTrue(g.transport.brokenReason().contains("starting the device at DRIVER_OK failed: the back-end is not"
                + " connected"), g.transport.brokenReason());
        assertEquals(Virtio.ISR_QUEUE | Virtio.ISR_CONFIG, g.read(0x060), "the driver is told by a config interrupt");
        assertEquals(0, model.starts.get());

        model.refuseStart = null; // the driver resets and starts over; now the device comes up
        g.write(0x070, 0);
        assertTrue(g.negotiate(V1 | ECHO));
        DriverQueue q = g.setupQueue(0, 16);
        g.driverOk();
        int head = echo(g, q, "again!!!");
        g.kick(0);
        assertEchoed(g, q, head, "again!!!");
    }

    @Test
    void resetReturnsEveryRegisterToItsPowerOnValue() throws Exception {
        Map<String, Long> powerOn = g.registerSnapshot(EchoModel.QUEUES);
        assertTrue(g.negotiate(V1 | ECHO | INDIRECT | EVENT_IDX));
        DriverQueue q0 = g.setupQueue(0, 16);
        g.setupQueue(1, 32);
        g.driverOk();
        int head = echo(g, q0, "register");
        g.kick(0);
        assertEchoed(g, q0, head, "register");
        g.awaitInterrupt();
        model.changeConfig();
        long generation = g.read(0x0fc);
        g.write(0x014, 1);
        g.write(0x030, 1);
        int resets = model.resets.get();

        g.write(0x070, 0);
        assertEquals(resets + 1, model.resets.get(), "the model reset before the Status write returned");
        assertEquals(0, g.status());
        assertEquals(0, g.read(0x060), "InterruptStatus cleared");
        assertFalse(g.lineRaised(), "and the line lowered");
        assertEquals(INDIRECT | EVENT_IDX | ECHO, g.read(0x010), "DeviceFeaturesSel back to 0");
        assertEquals(EchoModel.MAX_SIZE, g.read(0x034), "QueueSel back to 0");
        assertEquals(0, g.transport.guestFeatures());
        assertNull(g.transport.brokenReason());
        Map<String, Long> after = g.registerSnapshot(EchoModel.QUEUES);
        assertEquals(generation, after.remove("0x0fc"), "ConfigGeneration is not rewound (QEMU keeps it too)");
        powerOn.remove("0x0fc");
        assertEquals(powerOn, after);

        DriverQueue again = g.bringUp(V1, 8);
        head = echo(g, again, "2nd time");
        g.kick(0);
        assertEchoed(g, again, head, "2nd time");
    }

    @Test
    void accessesThatAreNotAlignedWordsAreIgnored() {
        assertEquals(0, g.read(0x000, 1));
        assertEquals(0, g.read(0x000, 2));
        assertEquals(0, g.read(0x002, 4), "misaligned word");
        assertEquals(0, g.read(0x000, 8));
        g.write(0x070, 1, Virtio.STATUS_ACKNOWLEDGE);
        g.write(0x070, 2, Virtio.STATUS_ACKNOWLEDGE);
        assertEquals(0, g.status());
        g.write(0x014, 2, 1);
        assertEquals(INDIRECT | EVENT_IDX | ECHO, g.read(0x010), "DeviceFeaturesSel unchanged");
        g.write(0x038, 1, 8);
        assertEquals(EchoModel.MAX_SIZE, g.read(0x038), "QueueNum unchanged");
        g.write(0x071, 4, Virtio.STATUS_ACKNOWLEDGE);
        assertEquals(0, g.status());
    }

    @Test
    void configSpaceReadsAtEachWidthLittleEndian() {
        assertEquals(0x11, g.read(0x100, 1));
        assertEquals(0x88, g.read(0x107, 1));
        assertEquals(0x2211, g.read(0x100, 2));
        assertEquals(0x4433, g.read(0x102, 2));
        assertEquals(0x44332211L, g.read(0x100, 4));
        assertEquals(0x88776655L, g.read(0x104, 4));
        assertEquals(0x7766, g.read(0x105, 2), "unaligned config reads are the driver's business");
        assertEquals(0xff, g.read(0x108, 1), "past the config space: all ones, as QEMU");
        assertEquals(0xffffffffL, g.read(0x106, 4), "straddling its end");
        assertEquals(0xffffffffL, g.read(0xffc, 4));
    }

    @Test
    void driverStatusBitsAreNotClearedWithoutReset() {
        assertTrue(g.negotiate(V1));
        g.write(0x070, Virtio.STATUS_ACKNOWLEDGE);
        assertEquals(Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_FEATURES_OK, g.status());
    }
}
