package dev.ferry.virtio.balloon;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.FreePageHints;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A RAM migration's pending set as the device sees it, recording what it is asked to clear. Obeys
 * the real one's rules (RamSender): a range outside one RAM region is refused with
 * IllegalArgumentException; only whole pages count.
 */
final class FreePageHintsProbe implements FreePageHints {
    private final GuestMemory memory;
    private final AtomicLong pages = new AtomicLong();
    private final List<Long> starts = new CopyOnWriteArrayList<>();

    FreePageHintsProbe(GuestMemory memory) {
        this.memory = memory;
    }

    @Override
    public long clearPending(long gpa, long length) {
        long first = (gpa + 4095) & -4096L;
        long end = (gpa + length) & -4096L;
        if (end <= first) {
            return 0;
        }
        try {
            memory.regionFor(first, end - first);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("not inside one RAM region");
        }
        starts.add(gpa);
        long n = (end - first) >>> 12;
        pages.addAndGet(n);
        return n;
    }

    long pages() {
        return pages.get();
    }

    List<Long> starts() {
        return starts;
    }
}
