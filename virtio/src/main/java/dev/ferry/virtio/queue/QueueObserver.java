package dev.ferry.virtio.queue;

/**
 * Sees a {@link SplitVirtqueue}'s chains come and go, for a vhost-user back-end's inflight region
 * (which heads the device holds, so a restarted back-end can resubmit them). Called on the
 * queue's thread, inside {@link SplitVirtqueue#pop}, {@link SplitVirtqueue#push(int, long)} and
 * {@link SplitVirtqueue#publish}; must not touch the queue.
 */
public interface QueueObserver {
    /** Chain {@code head} was taken from the available ring. */
    void popped(int head);

    /** Chain {@code head} was written to the used ring (not yet published). */
    void pushed(int head);

    /** {@code used.idx} is now {@code usedIdx}. */
    void published(int usedIdx);
}
