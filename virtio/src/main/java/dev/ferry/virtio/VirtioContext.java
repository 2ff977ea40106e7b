package dev.ferry.virtio;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.queue.SplitVirtqueue;

/**
 * What the transport gives a started {@link VirtioDeviceModel}: guest memory, its queues, the
 * negotiated features, and the ways to tell the driver something. Valid from {@code start} until
 * the next reset; used on the device's event loop (and, for {@link #notifyQueue}, from a stopping
 * device's drain).
 */
public interface VirtioContext {
    DeviceMemory memory();

    DeviceEventLoop loop();

    /** Features both sides agreed on (FEATURES_OK). */
    long features();

    /**
     * Queue {@code index}, or null when the driver did not make it ready or the device needs a
     * reset (after {@link #deviceError}, completions still in flight are dropped, as QEMU drops
     * a broken device's).
     */
    SplitVirtqueue queue(int index);

    /**
     * Whether queue {@code index} is enabled, running or not: a vhost-user ring the front-end
     * stopped (GET_VRING_BASE: the device is stopping) stays enabled, one it disabled
     * (SET_VRING_ENABLE 0: the driver gave up that queue) does not. A transport without the
     * distinction answers whether the queue is usable.
     */
    default boolean queueEnabled(int index) {
        return queue(index) != null;
    }

    /**
     * Used buffers were published on queue {@code index}: raise the used-buffer interrupt unless
     * the driver suppressed it (EVENT_IDX / NO_INTERRUPT).
     */
    void notifyQueue(int index);

    /** Config space changed: bump the generation and raise the config interrupt. */
    void configChanged();

    /**
     * The driver broke the protocol (a bad descriptor, an impossible request): the device stops
     * processing, sets NEEDS_RESET and raises the config interrupt (QEMU's virtio_error). The
     * reason is logged and kept for {@code describe}.
     */
    void deviceError(String reason);

    /**
     * The doorbell of queue {@code index}: the eventfd the transport signals on a guest's
     * QueueNotify (on KVM an ioeventfd would), for a model with an
     * {@link VirtioDeviceModel#externalDataPlane external data plane} to pass to its back-end.
     * Owned by the transport: the model must not close it.
     */
    default dev.ferry.core.sys.EventFd kickFd(int index) {
        throw new UnsupportedOperationException("this transport does not hand out its doorbells");
    }

    /**
     * A fresh doorbell for queue {@code index}, the one handed out before closed (an external
     * back-end that was dropped stops hearing the guest). Owned by the transport like
     * {@link #kickFd}.
     */
    default dev.ferry.core.sys.EventFd renewKickFd(int index) {
        throw new UnsupportedOperationException("this transport does not hand out its doorbells");
    }

    /**
     * Raises the used-buffer interrupt of queue {@code index} without looking at the ring's
     * suppression flags: an external back-end already decided (it signalled its call eventfd).
     * Nothing happens for a queue that is not ready or a device that needs a reset.
     */
    default void interruptQueue(int index) {
        notifyQueue(index);
    }
}
