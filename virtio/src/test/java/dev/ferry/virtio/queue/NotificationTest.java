package dev.ferry.virtio.queue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static dev.ferry.virtio.queue.RingFixture.buf;
import static dev.ferry.virtio.queue.RingFixture.data;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Kick and interrupt suppression, with and without EVENT_IDX, and the re-check after enabling. */
class NotificationTest {

    private static void addOne(RingFixture f, int k) {
        f.driver.add(List.of(buf(data(k), 8)), List.of(buf(data(k) + 8, 8)), false);
    }

    private static void completeAll(RingFixture f) {
        for (DescriptorChain c; (c = f.device.pop()) != null; ) {
            f.device.push(c, 0);
        }
        f.device.publish();
    }

    // ---- kicks (driver -> device) ----

    @ParameterizedTest(name = "EVENT_IDX {0}")
    @ValueSource(booleans = {false, true})
    void aBufferAddedWhileNotificationsAreOffIsFoundByTheRecheck(boolean eventIdx) {
        try (RingFixture f = new RingFixture(8, eventIdx, false, 65534)) {
            addOne(f, 0);
            assertTrue(f.driver.kickNeeded());
            // the device's loop: disable, drain ...
            assertFalse(f.device.setNotificationEnabled(false));
            assertNotNull(f.device.pop());
            assertEquals(null, f.device.pop());
            // ... the driver adds meanwhile and, told not to, does not kick ...
            addOne(f, 1);
            assertFalse(f.driver.kickNeeded(), "notifications are off while the device drains");
            // ... so the re-check after enabling must find it
            assertTrue(f.device.setNotificationEnabled(true));
            assertNotNull(f.device.pop());
            assertFalse(f.device.setNotificationEnabled(true), "nothing more");
        }
    }

    @ParameterizedTest(name = "EVENT_IDX {0}")
    @ValueSource(booleans = {false, true})
    void afterEnablingTheNextAddKicks(boolean eventIdx) {
        try (RingFixture f = new RingFixture(8, eventIdx, false, 65535)) {
            f.device.setNotificationEnabled(false);
            assertFalse(f.device.setNotificationEnabled(true));
            addOne(f, 0);
            assertTrue(f.driver.kickNeeded());
        }
    }

    @Test
    void withEventIdxOnlyTheFirstOfSeveralAddsKicks() {
        try (RingFixture f = new RingFixture(8, true, false, 0)) {
            addOne(f, 0);
            assertTrue(f.driver.kickNeeded(), "avail_event 0 is crossed by 0 -> 1");
            addOne(f, 1);
            assertFalse(f.driver.kickNeeded(), "the device has not caught up: avail_event still 0");
            addOne(f, 2);
            assertFalse(f.driver.kickNeeded());
            assertNotNull(f.device.pop());
            assertEquals(1, f.memory.readU16(SplitRing.availEvent(f.config.usedGpa(), 8)),
                    "pop asks for a kick at the entry after the one it took");
            f.device.pop();
            f.device.pop();
            assertEquals(3, f.memory.readU16(SplitRing.availEvent(f.config.usedGpa(), 8)));
            addOne(f, 3);
            assertTrue(f.driver.kickNeeded());
        }
    }

    @Test
    void withEventIdxBatchedAddsKickOnceWhenTheyCrossAvailEvent() {
        try (RingFixture f = new RingFixture(16, true, false, 65533)) {
            for (int i = 0; i < 5; i++) {
                addOne(f, i); // 65533 .. 2: across the wrap
            }
            assertTrue(f.driver.kickNeeded(), "avail_event 65533 lies in [65533, 2)");
            assertFalse(f.driver.kickNeeded(), "nothing added since");
        }
    }

    @Test
    void withoutEventIdxUsedFlagsNoNotifySuppressesKicks() {
        try (RingFixture f = new RingFixture(8, false, false, 0)) {
            f.device.setNotificationEnabled(false);
            assertEquals(SplitRing.USED_F_NO_NOTIFY, f.memory.readU16(SplitRing.usedFlags(f.config.usedGpa())));
            addOne(f, 0);
            assertFalse(f.driver.kickNeeded());
            assertTrue(f.device.setNotificationEnabled(true));
            assertEquals(0, f.memory.readU16(SplitRing.usedFlags(f.config.usedGpa())));
            addOne(f, 1);
            assertTrue(f.driver.kickNeeded());
        }
    }

    // ---- interrupts (device -> driver) ----

    @Test
    void withoutEventIdxAvailFlagsNoInterruptSuppressesInterrupts() {
        try (RingFixture f = new RingFixture(8, false, false, 0)) {
            addOne(f, 0);
            completeAll(f);
            assertTrue(f.device.shouldNotify());
            assertFalse(f.driver.setInterruptsEnabled(false));
            addOne(f, 1);
            completeAll(f);
            assertFalse(f.device.shouldNotify());
            assertTrue(f.driver.setInterruptsEnabled(true), "the used element waiting is found by the re-check");
        }
    }

    @Test
    void withEventIdxTheDeviceInterruptsWhenUsedIdxPassesUsedEvent() {
        try (RingFixture f = new RingFixture(32, true, false, 65530)) {
            for (int i = 0; i < 12; i++) {
                addOne(f, i);
            }
            assertTrue(f.device.setNotificationEnabled(true));
            DescriptorChain[] c = new DescriptorChain[12];
            for (int i = 0; i < 12; i++) {
                c[i] = f.device.pop();
            }
            f.device.push(c[0], 0);
            f.device.publish();
            assertTrue(f.device.shouldNotify(), "the first decision after enable/restore is unconditional");

            f.driver.requestInterruptAt(65535); // "interrupt me when used.idx moves past 65535"
            f.device.push(c[1], 0);
            f.device.publish(); // 65531 -> 65532
            assertFalse(f.device.shouldNotify());
            f.device.push(c[2], 0);
            f.device.push(c[3], 0);
            f.device.publish(); // -> 65534
            assertFalse(f.device.shouldNotify());
            f.device.push(c[4], 0);
            f.device.push(c[5], 0);
            f.device.publish(); // -> 0: passes 65535
            assertTrue(f.device.shouldNotify());
            assertFalse(f.device.shouldNotify(), "nothing published since the last decision");

            f.driver.requestInterruptAt(1);
            f.device.push(c[6], 0);
            f.device.publish(); // -> 1
            assertFalse(f.device.shouldNotify());
            f.device.push(c[7], 0);
            f.device.publish(); // -> 2: passes 1
            assertTrue(f.device.shouldNotify());
        }
    }

    @Test
    void withEventIdxPollingReArmsUsedEvent() {
        try (RingFixture f = new RingFixture(8, true, false, 0)) {
            addOne(f, 0);
            addOne(f, 1);
            completeAll(f);
            assertTrue(f.device.shouldNotify());
            f.driver.pollUsed();
            f.driver.pollUsed();
            assertEquals(2, f.memory.readU16(SplitRing.usedEvent(f.config.availGpa(), 8)));
            addOne(f, 2);
            completeAll(f);
            assertTrue(f.device.shouldNotify(), "the driver caught up, so the next element interrupts");
            addOne(f, 3);
            completeAll(f);
            assertFalse(f.device.shouldNotify(), "the driver has not collected element 2 yet");
        }
    }

    @Test
    void withEventIdxTheFirstDecisionAfterARestoreIsUnconditional() {
        try (RingFixture f = new RingFixture(8, true, false, 100)) {
            f.driver.requestInterruptAt(50); // far behind: would never fire
            addOne(f, 0);
            completeAll(f);
            assertTrue(f.device.shouldNotify());
            addOne(f, 1);
            completeAll(f);
            assertFalse(f.device.shouldNotify());
            f.device.forceNextNotify();
            addOne(f, 2);
            completeAll(f);
            assertTrue(f.device.shouldNotify());
        }
    }

    @Test
    void usedEventCanOnlyBeRequestedWithEventIdx() {
        try (RingFixture f = RingFixture.plain(8)) {
            assertThrows(IllegalStateException.class, () -> f.driver.requestInterruptAt(3));
        }
    }
}
