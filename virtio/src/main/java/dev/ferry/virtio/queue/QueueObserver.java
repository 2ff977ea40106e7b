package dev.ferry.virtio.queue;

/**
 * Sees a {@link SplitVirtqueue}'s chains come and go, for a vhost-user back-end's inflight region
 * (which heads the device holds, so a restarted back-end can resubmit them). Called on the
 * queue's thread, inside {@link SplitVirtqueue#pop} and {@link SplitVirtqueue#push(int, long)};
 * must not touch the queue.
 *
 * <p>A queue with an observer publishes each used element on its own, between
 * {@link #beforePut} and {@link #afterPut}: the inflight region's recovery knows only the last
 * batch's head, so a batch of several elements published together could leave a published
 * head marked in flight (resubmitted, completed twice) when the back-end dies before recording
 * them all.
 */
public interface QueueObserver {
    /** Chain {@code head} was taken from the available ring. */
    void popped(int head);

    /** Chain {@code head}'s used element is about to be written and published (the spec's "last batch head"). */
    void beforePut(int head);

    /** Chain {@code head}'s used element is visible: {@code used.idx} is now {@code usedIdx}. */
    void afterPut(int head, int usedIdx);
}
