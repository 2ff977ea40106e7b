package dev.ferry.virtio.balloon;

import dev.ferry.core.migration.MigrationRegistry;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.Segment;
import dev.ferry.virtio.queue.SplitVirtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The free page queue of a {@link VirtioBalloon}: a device-readable buffer carries a command id
 * for {@link FreePageHinting}'s state machine, a device-writable one a run of free pages, which
 * leaves the migration's pending set through {@link MigrationRegistry#guestFreePageHint} while
 * the id it came under is started. A buffer that is neither is a protocol error (NEEDS_RESET).
 * Loop thread only.
 */
final class FreePageHintQueue {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBalloon.class);

    private final String id;
    private final FreePageHinting hinting;
    private final BalloonCounters counters;
    private final MigrationRegistry registry;
    private final long[] cleared = new long[1];

    FreePageHintQueue(String id, FreePageHinting hinting, BalloonCounters counters, MigrationRegistry registry) {
        this.id = id;
        this.hinting = hinting;
        this.counters = counters;
        this.registry = registry;
    }

    /** Serves every available buffer of the free page queue. */
    void serve(VirtioContext c, SplitVirtqueue vq) {
        DescriptorChain chain;
        boolean any = false;
        while ((chain = vq.pop()) != null) {
            if (chain.writableBytes() > 0) {
                for (Segment s : chain.writable()) {
                    hint(s.gpa(), s.length());
                }
            } else if (chain.readableBytes() >= 4) {
                int cmd = chain.reader().readU32();
                FreePageHinting.Outcome o = hinting.onDriverId(cmd);
                if (o == FreePageHinting.Outcome.STARTED) {
                    counters.hintRounds.incrementAndGet();
                } else if (o == FreePageHinting.Outcome.IGNORED) {
                    counters.staleHints.incrementAndGet();
                }
            } else {
                vq.push(chain, 0);
                vq.publish();
                c.deviceError("free page hint buffer head " + chain.head() + " holds " + chain.readableBytes()
                        + " readable bytes and no writable one; a command id needs 4");
                return;
            }
            vq.push(chain, 0);
            any = true;
        }
        if (any) {
            vq.publish();
            c.notifyQueue(vq.index());
        }
    }

    private void hint(long gpa, long length) {
        try {
            FreePageHinting.Outcome o = hinting.applyHint(gpa, length, registry::guestFreePageHint, cleared);
            if (o == FreePageHinting.Outcome.APPLIED) {
                counters.hintBuffers.incrementAndGet();
                counters.hintedPagesCleared.addAndGet(cleared[0]);
            } else {
                counters.staleHints.incrementAndGet();
            }
        } catch (IllegalArgumentException e) {
            counters.refusedHints.incrementAndGet();
            LOG.debug("{}: hint refused: {}", id, e.getMessage());
        }
    }
}
