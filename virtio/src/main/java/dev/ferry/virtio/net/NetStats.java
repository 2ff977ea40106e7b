package dev.ferry.virtio.net;

import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/** virtio-net's counters: written on the loop thread, read by reports on any thread. */
final class NetStats {
    final AtomicLong txFrames = new AtomicLong();
    final AtomicLong txBytes = new AtomicLong();
    final AtomicLong txDropped = new AtomicLong();
    /** TX frames the driver handed over in more than one device-readable buffer. */
    final AtomicLong txMultiBuffer = new AtomicLong();
    final AtomicLong rxFrames = new AtomicLong();
    /** RX frames written into more than one RX chain (MRG_RXBUF, num_buffers above 1). */
    final AtomicLong rxMultiBuffer = new AtomicLong();
    final AtomicLong rxBytes = new AtomicLong();
    final AtomicLong rxFiltered = new AtomicLong();
    /** Received frames dropped because the guest's RX buffers cannot hold them (see NetRx). */
    final AtomicLong rxTooBig = new AtomicLong();
    final AtomicLong rxNoBuffers = new AtomicLong();
    final AtomicLong rxDroppedAtStop = new AtomicLong();
    final AtomicLong backendErrors = new AtomicLong();
    final AtomicLong ctrlCommands = new AtomicLong();
    final AtomicLong ctrlErrors = new AtomicLong();
    final AtomicLong rarpsSent = new AtomicLong();
    final AtomicLong guestAnnounces = new AtomicLong();
    final AtomicLong announceAcks = new AtomicLong();

    void describe(Map<String, Object> d) {
        d.put("tx-frames", txFrames.get());
        d.put("tx-bytes", txBytes.get());
        d.put("tx-dropped", txDropped.get());
        d.put("tx-multi-buffer", txMultiBuffer.get());
        d.put("rx-frames", rxFrames.get());
        d.put("rx-multi-buffer", rxMultiBuffer.get());
        d.put("rx-bytes", rxBytes.get());
        d.put("rx-filtered", rxFiltered.get());
        d.put("rx-too-big", rxTooBig.get());
        d.put("rx-no-buffers", rxNoBuffers.get());
        d.put("rx-dropped-at-stop", rxDroppedAtStop.get());
        d.put("backend-errors", backendErrors.get());
        d.put("ctrl-commands", ctrlCommands.get());
        d.put("ctrl-errors", ctrlErrors.get());
        d.put("rarps-sent", rarpsSent.get());
        d.put("guest-announces", guestAnnounces.get());
        d.put("announce-acks", announceAcks.get());
    }
}
