package dev.ferry.virtio.queue;

/**
 * The driver broke the virtqueue protocol (or set the queue up where it cannot work): the device
 * must stop using the queue and ask for a reset (QEMU's {@code virtio_error}: NEEDS_RESET, config
 * interrupt, device broken). The message names the queue and what was wrong; {@link #reason()}
 * is the part after the queue's name. From a migration load, {@link #fatalOnLoad()} says whether
 * the load must fail rather than go on with the device broken.
 */
public class VirtqueueError extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String reason;
    private final boolean fatalOnLoad;

    public VirtqueueError(String queue, String reason) {
        this(queue, reason, false);
    }

    private VirtqueueError(String queue, String reason, boolean fatalOnLoad) {
        super(queue + ": " + reason);
        this.reason = reason;
        this.fatalOnLoad = fatalOnLoad;
    }

    /** A state a migration load must refuse (QEMU {@code virtio_load} returns an error). */
    static VirtqueueError loadFailure(String queue, String reason) {
        return new VirtqueueError(queue, reason, true);
    }

    /** What was wrong, without the queue's name. */
    public String reason() {
        return reason;
    }

    /** True when a migration load must fail; false when it goes on with the device broken. */
    public boolean fatalOnLoad() {
        return fatalOnLoad;
    }
}
