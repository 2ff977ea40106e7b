package dev.ferry.virtio.transport;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.SplitRing;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/**
 * The transport's hooks for a device whose queues an external back-end serves (vhost-user): the
 * doorbell is left to the back-end (the loop never reads it, the model never hears a kick), and
 * the back-end's "used buffers" signal raises the interrupt whatever the ring's suppression flag
 * says, while the transport's own notify still honours it.
 */
@Timeout(30)
class ExternalDataPlaneTest {
    @Test
    void doorbellIsLeftToTheBackEndAndItsSignalInterruptsUnconditionally() throws Exception {
        EchoModel model = new EchoModel(true);
        try (MmioGuest g = MmioGuest.running("vm", model)) {
            DriverQueue q = g.bringUp(Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(EchoModel.F_ECHO), 16);
            VirtioMmioTest.echo(g, q, "external");
            g.kick(0);
            g.kick(0);
            VirtioContext ctx = model.context();
            assertEquals(2, ctx.kickFd(0).consume(), "both kicks wait in the doorbell for the back-end");
            assertEquals(0, model.notifications.get(), "the model hears no kick");
            assertEquals(0, g.read(0x060), "nothing used yet");

            long avail = MmioGuest.layout(0, 16, 0).availGpa();
            g.mem.writeU16(avail, SplitRing.AVAIL_F_NO_INTERRUPT);
            int gsi = g.transport.irq().gsi();
            ctx.loop().call(() -> {
                ctx.notifyQueue(0);
                return null;
            });
            assertEquals(0, g.read(0x060), "the transport's own notify honours NO_INTERRUPT");
            ctx.loop().call(() -> {
                ctx.interruptQueue(0);
                return null;
            });
            assertEquals(Virtio.ISR_QUEUE, g.read(0x060), "the back-end's signal raises the used-buffer interrupt");
            assertNotEquals(0, g.irqchip.pendingMask() & (1 << gsi));
        }
    }

    /**
     * A renewed doorbell: the one handed out before is closed (a back-end still holding its
     * duplicate hears nothing more), the guest's kicks reach the new one, and a device with its
     * own data plane has no doorbell to renew.
     */
    @Test
    void aRenewedDoorbellTakesTheGuestsKicksAndTheOldOneIsClosed() throws Exception {
        EchoModel model = new EchoModel(true);
        try (MmioGuest g = MmioGuest.running("vm", model)) {
            g.bringUp(Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(EchoModel.F_ECHO), 16);
            VirtioContext ctx = model.context();
            dev.ferry.core.sys.EventFd old = ctx.kickFd(0);
            g.kick(0);
            dev.ferry.core.sys.EventFd fresh = ctx.loop().call(() -> ctx.renewKickFd(0));
            assertNotEquals(old, fresh);
            assertEquals(fresh, ctx.kickFd(0));
            org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, old::signal,
                    "the old doorbell is closed");
            g.kick(0);
            g.kick(0);
            assertEquals(2, fresh.consume(), "the guest's kicks after the renewal reach the new doorbell");
        }
        EchoModel own = new EchoModel(false);
        try (MmioGuest g = MmioGuest.running("vm2", own)) {
            g.bringUp(Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(EchoModel.F_ECHO), 16);
            org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                    () -> g.transport.renewKick(0), "the device loop serves this doorbell");
        }
    }
}
