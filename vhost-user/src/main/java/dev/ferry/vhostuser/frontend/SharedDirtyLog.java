package dev.ferry.vhostuser.frontend;

import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.vhostuser.proto.VhostUser;

/**
 * The vhost-user dirty log (LOG_SHMFD): a memfd the back-end maps and in which it sets one bit
 * per 4 KiB guest-physical page it writes, atomically:
 * <pre>
 *   byte gpa / 4096 / 8, bit (gpa / 4096) % 8        (little-endian u64 word w covers pages 64w..64w+63)
 * </pre>
 * Sized to cover the highest guest-physical address of RAM (rounded up to whole u64 words).
 * {@link #harvest} takes each non-zero word with an atomic swap to 0, as QEMU does, so a bit the
 * back-end sets during the harvest is either taken now or stays for the next one.
 *
 * <p>Owns the memfd and its mapping; harvested on the migration thread, closed once.
 */
final class SharedDirtyLog implements AutoCloseable {
    private final Fd fd;
    private final Mapping map;
    private final long size;
    private final GuestRegion[] regions;
    private volatile long pagesReported;

    SharedDirtyLog(String name, GuestMemory memory) {
        long end = 0;
        for (GuestRegion r : memory.regions()) {
            end = Math.max(end, r.gpaBase() + r.size());
        }
        long pages = (end + VhostUser.LOG_PAGE - 1) / VhostUser.LOG_PAGE;
        this.size = Math.max(8, (pages + 63) / 64 * 8);
        this.regions = memory.regions().toArray(new GuestRegion[0]);
        Fd f = Sys.memfdCreate("ferry-vhost-log-" + name, Linux.MFD_CLOEXEC);
        try {
            Sys.ftruncate(f, size);
            this.map = Mapping.shared(f, 0, size);
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
        this.fd = f;
    }

    Fd fd() {
        return fd;
    }

    long size() {
        return size;
    }

    /** Pages reported so far (all harvests), for {@code describe} and tests. */
    long pagesReported() {
        return pagesReported;
    }

    /** Moves every bit set since the last harvest into {@code target}. Migration thread. */
    void harvest(DirtyPages target) {
        long base = map.address();
        long words = size / 8;
        for (long w = 0; w < words; w++) {
            long a = base + w * 8;
            if (NativeMemory.getLongVolatile(a) == 0) {
                continue;
            }
            long bits = NativeMemory.getAndSetLong(a, 0);
            while (bits != 0) {
                int b = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                mark(target, w * 64 + b);
            }
        }
    }

    /** Reports page {@code page} (a GPA / 4096) in the bitmap of its region; a page outside RAM is ignored. */
    private void mark(DirtyPages target, long page) {
        long gpa = page * VhostUser.LOG_PAGE;
        for (GuestRegion r : regions) {
            if (r.contains(gpa)) {
                target.bitmap(r).set((gpa - r.gpaBase()) / VhostUser.LOG_PAGE);
                pagesReported++;
                return;
            }
        }
    }

    /** Whether page {@code gpa / 4096} is set now (tests). */
    boolean isSet(long gpa) {
        long page = gpa / VhostUser.LOG_PAGE;
        return (NativeMemory.getLongVolatile(map.address() + page / 64 * 8) & 1L << (page % 64)) != 0;
    }

    @Override
    public void close() {
        map.close();
        fd.close();
    }
}
