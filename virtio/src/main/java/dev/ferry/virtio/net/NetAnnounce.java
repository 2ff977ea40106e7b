package dev.ferry.virtio.net;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The announce of a {@link VirtioNet} whose state came from a migration, when the VM first runs:
 * RARP rounds sent by the device through the back-end, and with GUEST_ANNOUNCE (and the control
 * queue) the guest's own rounds, each raised by STATUS's ANNOUNCE bit and a config interrupt and
 * ended by the driver's ANNOUNCE_ACK. Each schedule is an {@link AnnounceTimer} on a loop timer.
 * Loop thread only.
 */
final class NetAnnounce {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioNet.class);

    private final VirtioNet net;
    private DeviceEventLoop.Timer selfTimer;
    private DeviceEventLoop.Timer guestTimer;
    private AnnounceTimer selfAnnounce;
    private AnnounceTimer guestAnnounce;
    /** The state came from a migration: announce when the VM first runs. */
    private boolean pending;
    /** When each RARP round of the last schedule went out (System.nanoTime), 0 for rounds not sent. */
    private final long[] rarpTimes = new long[AnnounceTimer.ROUNDS];

    NetAnnounce(VirtioNet net) {
        this.net = net;
    }

    /** A migrated state was committed: announce at the next start. */
    void armAfterLoad() {
        pending = true;
    }

    /** Device reset: nothing to announce. */
    void clearPending() {
        pending = false;
    }

    /** The device starts: creates the timers once, and begins the schedules a migration left pending. */
    void start(VirtioContext context) {
        if (selfTimer == null) {
            selfTimer = context.loop().timer(() -> selfAnnounce.expired());
            guestTimer = context.loop().timer(() -> guestAnnounce.expired());
            selfAnnounce = new AnnounceTimer(false, AnnounceTimer.Scheduler.of(selfTimer), this::sendRarp);
            guestAnnounce = new AnnounceTimer(true, AnnounceTimer.Scheduler.of(guestTimer), this::announceToGuest);
        }
        if (pending) {
            pending = false;
            selfAnnounce.begin();
            long f = context.features();
            if (Virtio.has(f, VirtioNet.F_GUEST_ANNOUNCE) && Virtio.has(f, VirtioNet.F_CTRL_VQ)) {
                guestAnnounce.begin();
            }
        }
    }

    /** Stops both schedules (quiesce, close). */
    void stop() {
        if (selfAnnounce != null) {
            selfAnnounce.stop();
            guestAnnounce.stop();
        }
    }

    /** Closes the timers; the device is closing. */
    void closeTimers() {
        if (selfTimer != null) {
            selfTimer.close();
            guestTimer.close();
        }
    }

    /** VIRTIO_NET_CTRL_ANNOUNCE_ACK: clears S_ANNOUNCE (before the ack completes, as the spec asks) and lets the next round come. */
    boolean ack() {
        if ((net.status & NetConfig.S_ANNOUNCE) == 0) {
            return false;
        }
        net.status &= ~NetConfig.S_ANNOUNCE;
        net.stats.announceAcks.incrementAndGet();
        guestAnnounce.acked();
        return true;
    }

    private void sendRarp(int round) {
        if (!net.serving || (net.status & NetConfig.S_LINK_UP) == 0) {
            return;
        }
        byte[] mac = net.mac;
        byte[] f = Rarp.frame(mac);
        long txBuf = net.txBuf;
        NetHeader.clear(txBuf);
        NativeMemory.copyFromArray(f, 0, txBuf + NetHeader.SIZE, f.length);
        try {
            if (net.backend.send(txBuf, NetHeader.SIZE + f.length)) {
                net.stats.rarpsSent.incrementAndGet();
                if (round == 0) {
                    Arrays.fill(rarpTimes, 0);
                }
                rarpTimes[round] = System.nanoTime();
            }
        } catch (NativeCallException e) {
            net.backendError(e);
        }
        LOG.debug("{}: announce round {}: RARP for {}", net.id, round, NetOptions.format(net.mac));
    }

    private void announceToGuest(int round) {
        if (!net.serving || net.ctx == null) {
            return;
        }
        net.status |= NetConfig.S_ANNOUNCE;
        net.stats.guestAnnounces.incrementAndGet();
        net.ctx.configChanged();
    }

    /** The self-announce schedule's state (tests, reports). */
    AnnounceTimer.State selfState() {
        return selfAnnounce == null ? AnnounceTimer.State.IDLE : selfAnnounce.state();
    }

    /** When the last schedule's RARP rounds went out, in microseconds after the first. */
    List<Long> lastRoundOffsetsMicros() {
        List<Long> offsets = new ArrayList<>();
        for (long t : rarpTimes.clone()) {
            if (t != 0) {
                offsets.add((t - rarpTimes[0]) / 1000);
            }
        }
        return offsets;
    }
}
