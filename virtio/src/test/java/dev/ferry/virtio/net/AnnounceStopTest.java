package dev.ferry.virtio.net;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.virtio.Virtio;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.ByteBuffer;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The announce after a migration stops cleanly mid-schedule: when the destination's VM stops, and
 * when its driver resets the device, no RARP and no S_ANNOUNCE follows — also not after the VM
 * runs again. And a VM that never loaded a device state (a source, or a fresh boot) never announces.
 */
@Timeout(60)
class AnnounceStopTest {
    static final long FEATURES = NetFixture.BASE | Virtio.bit(VirtioNet.F_CTRL_VQ)
            | Virtio.bit(VirtioNet.F_GUEST_ANNOUNCE) | Virtio.bit(VirtioNet.F_STATUS);

    @Test
    void vmStopEndsTheSchedule() throws Exception {
        midSchedule(dst -> {
            try {
                dst.g.machine.vmStop(RunState.PAUSED);
                assertEquals(AnnounceTimer.State.IDLE, dst.net.selfAnnounceState());
                dst.g.machine.vmStart();
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
    }

    @Test
    void deviceResetEndsTheSchedule() throws Exception {
        midSchedule(dst -> {
            dst.g.write(0x070, 0);
            try {
                dst.g.settle();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            assertEquals(AnnounceTimer.State.IDLE, dst.net.selfAnnounceState());
            assertEquals(0, dst.g.read(0x106, 2) & NetConfig.S_ANNOUNCE, "ANNOUNCE clears with the reset");
        });
    }

    @Test
    void aVmThatLoadedNothingNeverAnnounces() throws Exception {
        try (NetFixture n = new NetFixture(true)) {
            n.bringUp(FEATURES);
            n.g.machine.vmStop(RunState.PAUSED);
            n.g.machine.vmStart();
            Thread.sleep(300);
            assertTrue(n.wireQuiet(), "no frame from a VM that was not migrated in");
            assertEquals(0L, n.stats().get("rarps-sent"));
            assertEquals(0L, n.stats().get("guest-announces"));
        }
    }

    /** Migrates a device in, runs it until two RARPs went out, applies {@code interrupt}, and checks nothing follows. */
    private static void midSchedule(Consumer<NetFixture> interrupt) throws Exception {
        try (NetFixture src = new NetFixture(true)) {
            src.bringUp(FEATURES);
            byte[] stream = InMemoryMigration.save(src.g.machine);
            try (NetFixture dst = NetFixture.incoming(true)) {
                NetStateTest.load(dst.g.machine, stream);
                dst.g.machine.vmStart();
                assertRarp(dst.toWire());
                assertRarp(dst.toWire()); // round 1 at ~50 ms; round 2 would come at ~200 ms
                interrupt.accept(dst);
                long sent = (Long) dst.stats().get("rarps-sent");
                assertTrue(sent < AnnounceTimer.ROUNDS, "stopped mid-schedule: " + sent + " sent");
                Thread.sleep(1000); // past the whole schedule (800 ms)
                assertEquals(sent, dst.stats().get("rarps-sent"), "no RARP after the stop");
                for (long i = 2; i < sent; i++) {
                    assertRarp(dst.toWire()); // any sent before the interrupt took effect
                }
                assertTrue(dst.wireQuiet(), "nothing more on the wire");
                assertTrue((Long) dst.stats().get("guest-announces") <= 1, "the guest announce awaited its first ack");
            }
        }
    }

    private static void assertRarp(byte[] f) {
        assertEquals(Rarp.SIZE, f.length);
        assertEquals(Rarp.ETHERTYPE, ByteBuffer.wrap(f).getShort(12) & 0xffff);
        assertEquals(Rarp.OP_REVERSE_REQUEST, ByteBuffer.wrap(f).getShort(20));
        for (int i = 0; i < 6; i++) {
            assertEquals(-1, f[i], "broadcast");
            assertEquals(NetFixture.MAC[i], f[6 + i], "from the NIC's MAC");
            assertEquals(NetFixture.MAC[i], f[22 + i], "sender hardware address");
            assertEquals(NetFixture.MAC[i], f[32 + i], "target hardware address");
        }
    }
}
