package dev.ferry.virtio.queue;

import dev.ferry.virtio.queue.DriverQueue.Used;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static dev.ferry.virtio.queue.RingFixture.buf;
import static dev.ferry.virtio.queue.RingFixture.data;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The driver and the device as two state machines, their steps interleaved at random (one
 * thread, seeded, so every run is the same and nothing waits on a clock). Each side acts only
 * when the other notified it — the device after a kick, the driver after an interrupt — and each
 * runs the classic "disable, drain, enable, re-check" loop. A lost kick or interrupt leaves a
 * request stranded, which the final check finds.
 */
class NotificationRaceTest {
    /** Waiting for a notification; draining with notifications off; drained, about to re-enable. */
    private enum Side { IDLE, DRAINING, DRAINED }

    private static final class Run {
        final RingFixture f;
        final SplittableRandom rnd;
        Side device = Side.IDLE;
        Side driver = Side.IDLE;
        boolean kick;
        boolean interrupt;
        int kicks;
        int interrupts;
        int added;
        int completed;
        final List<DescriptorChain> popped = new ArrayList<>();

        Run(RingFixture f, long seed) {
            this.f = f;
            this.rnd = new SplittableRandom(seed);
        }

        void driverAdd() {
            if (f.driver.freeDescriptors() < 2) {
                return;
            }
            f.driver.add(List.of(buf(data(added % 512), 8)), List.of(buf(data(added % 512) + 8, 8)), false);
            added++;
            if (f.driver.kickNeeded()) {
                kick = true;
                kicks++;
            }
        }

        /** One step of the guest's interrupt handler. */
        void driverStep() {
            if (driver == Side.IDLE) {
                if (interrupt) {
                    interrupt = false;
                    f.driver.setInterruptsEnabled(false);
                    driver = Side.DRAINING;
                }
                return;
            }
            if (driver == Side.DRAINING) {
                Used u = f.driver.pollUsed();
                if (u != null) {
                    completed++;
                } else {
                    driver = Side.DRAINED;
                }
            } else if (f.driver.setInterruptsEnabled(true)) {
                f.driver.setInterruptsEnabled(false);
                driver = Side.DRAINING;
            } else {
                driver = Side.IDLE;
            }
        }

        /** One step of the device's event loop. */
        void deviceStep() {
            if (device == Side.IDLE) {
                if (kick) {
                    kick = false;
                    f.device.setNotificationEnabled(false);
                    device = Side.DRAINING;
                }
                return;
            }
            if (device == Side.DRAINED) {
                if (f.device.setNotificationEnabled(true)) {
                    f.device.setNotificationEnabled(false);
                    device = Side.DRAINING;
                } else {
                    device = Side.IDLE;
                }
                return;
            }
            int action = rnd.nextInt(4);
            if (action == 0 && !popped.isEmpty()) {
                f.device.push(popped.remove(0), 8);
                return;
            }
            if (action == 1) {
                publish();
                return;
            }
            DescriptorChain c = f.device.pop();
            if (c != null) {
                popped.add(c);
                return;
            }
            while (!popped.isEmpty()) {
                f.device.push(popped.remove(0), 8);
            }
            publish();
            device = Side.DRAINED;
        }

        void publish() {
            if (f.device.pendingUsed() == 0) {
                return;
            }
            f.device.publish();
            if (f.device.shouldNotify()) {
                interrupt = true;
                interrupts++;
            }
        }

        /** Every loop is bounded: a stranded request ends the run instead of spinning on a full queue. */
        void run(int requests) {
            for (long step = 0; added < requests && step < 100L * requests; step++) {
                switch (rnd.nextInt(3)) {
                    case 0 -> driverAdd();
                    case 1 -> driverStep();
                    default -> deviceStep();
                }
            }
            // no more requests: let both sides run until neither has anything to do
            for (int i = 0; i < 10 * requests && (kick || interrupt || device != Side.IDLE || driver != Side.IDLE); i++) {
                if (rnd.nextBoolean()) {
                    driverStep();
                } else {
                    deviceStep();
                }
            }
        }
    }

    @Test
    void noRequestIsStrandedWhateverTheInterleaving() {
        for (boolean eventIdx : new boolean[] {false, true}) {
            for (int initial : new int[] {0, 65530}) {
                for (long seed = 1; seed <= 8; seed++) {
                    try (RingFixture f = new RingFixture(16, eventIdx, false, initial)) {
                        Run r = new Run(f, seed * 31 + initial + (eventIdx ? 7 : 0));
                        r.run(3000);
                        String where = "EVENT_IDX " + eventIdx + ", initial " + initial + ", seed " + seed;
                        assertEquals(r.added, r.completed, where + ": every request completed and collected");
                        assertEquals(16, f.driver.freeDescriptors(), where);
                        assertEquals((initial + r.added) & 0xffff, f.device.usedIdx(), where);
                        assertTrue(r.kicks < r.added, where + ": some kicks were suppressed (" + r.kicks + ")");
                        assertTrue(r.interrupts < r.added, where + ": some interrupts were suppressed (" + r.interrupts + ")");
                    }
                }
            }
        }
    }
}
