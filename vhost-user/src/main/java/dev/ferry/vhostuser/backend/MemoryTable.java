package dev.ferry.vhostuser.backend;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.WriteObserver;
import dev.ferry.core.sys.Fd;
import dev.ferry.vhostuser.proto.Payloads.MemRegion;
import dev.ferry.vhostuser.proto.VhostUserException;

import java.util.ArrayList;
import java.util.List;

/**
 * The front-end's memory table as this back-end maps it: one {@link GuestRegion} per entry,
 * mapped from the descriptor that came with it at its {@code mmap_offset}, and a
 * {@link GuestMemory} view over them by guest-physical address for the device model. Ring
 * addresses arrive in the front-end's own address space ({@code userspace_addr}); {@link #toGpa}
 * translates them, refusing any range that does not lie inside one region.
 *
 * <p>Immutable: a change (SET_MEM_TABLE, ADD/REM_MEM_REG) builds a new table, and the caller
 * closes the old one once its device no longer uses it. Owns its regions (and so their fds).
 */
final class MemoryTable implements AutoCloseable {
    /** Regions QEMU may place with CONFIGURE_MEM_SLOTS; GET_MAX_MEM_SLOTS reports it. */
    static final int MAX_SLOTS = 32;
    private final List<MemRegion> entries;
    private final List<GuestRegion> regions;
    private final GuestMemory memory;
    private final DeviceMemory device;

    private MemoryTable(List<MemRegion> entries, List<GuestRegion> regions) {
        this.entries = List.copyOf(entries);
        this.regions = List.copyOf(regions);
        this.memory = GuestMemory.view(regions);
        this.device = new DeviceMemory(memory);
    }

    static MemoryTable empty() {
        return new MemoryTable(List.of(), List.of());
    }

    /**
     * A new table of {@code added} plus the regions of {@code keep} (taken over: the caller must
     * not close {@code keep} afterwards, only a table it replaced entirely). Every fd in
     * {@code fds} is owned from here on, also on failure.
     */
    static MemoryTable build(MemoryTable keep, List<MemRegion> added, List<Fd> fds) throws VhostUserException {
        List<GuestRegion> mapped = new ArrayList<>();
        int next = 0;
        try {
            List<MemRegion> entries = new ArrayList<>(keep.entries);
            List<GuestRegion> regions = new ArrayList<>(keep.regions);
            if (entries.size() + added.size() > MAX_SLOTS) {
                throw new VhostUserException("memory table of " + (entries.size() + added.size())
                        + " regions; at most " + MAX_SLOTS + " are served");
            }
            for (; next < added.size(); next++) {
                MemRegion e = added.get(next);
                for (MemRegion o : entries) {
                    if (overlaps(e.guestPhysAddr(), e.size(), o.guestPhysAddr(), o.size())
                            || overlaps(e.userAddr(), e.size(), o.userAddr(), o.size())) {
                        throw new VhostUserException(describe(e) + " overlaps " + describe(o));
                    }
                }
                GuestRegion r;
                try {
                    r = GuestRegion.mapPeer("vhost-mem" + regions.size(), regions.size(), e.guestPhysAddr(), e.size(),
                            fds.get(next), e.mmapOffset());
                } catch (RuntimeException x) {
                    next++; // mapPeer closed it
                    throw new VhostUserException(describe(e) + ": " + x.getMessage(), x);
                }
                mapped.add(r);
                regions.add(r);
                entries.add(e);
            }
            return new MemoryTable(entries, regions);
        } catch (VhostUserException | RuntimeException e) {
            mapped.forEach(GuestRegion::close);
            for (int i = next; i < fds.size(); i++) {
                fds.get(i).close();
            }
            throw e;
        }
    }

    /**
     * This table without the entry equal to {@code gone} (REM_MEM_REG): returns the new table and
     * the removed region, which the caller closes once the device is off it.
     */
    MemoryTable without(MemRegion gone, List<GuestRegion> removed) throws VhostUserException {
        List<MemRegion> entries = new ArrayList<>(this.entries);
        List<GuestRegion> regions = new ArrayList<>(this.regions);
        for (int i = 0; i < entries.size(); i++) {
            MemRegion e = entries.get(i);
            if (e.guestPhysAddr() == gone.guestPhysAddr() && e.size() == gone.size() && e.userAddr() == gone.userAddr()) {
                removed.add(regions.remove(i));
                entries.remove(i);
                return new MemoryTable(entries, regions);
            }
        }
        throw new VhostUserException("REM_MEM_REG " + describe(gone) + " is not in the memory table");
    }

    /** The guest-physical address of front-end address {@code uaddr}, if {@code [uaddr, +len)} is in one region. */
    long toGpa(long uaddr, long len, String what) throws VhostUserException {
        for (MemRegion e : entries) {
            if (e.containsUser(uaddr, len)) {
                return e.guestPhysAddr() + (uaddr - e.userAddr());
            }
        }
        throw new VhostUserException(what + String.format(" at front-end address 0x%x (+%d) is not inside the memory "
                + "table (%d regions)", uaddr, len, entries.size()));
    }

    DeviceMemory device() {
        return device;
    }

    void observeWrites(WriteObserver o) {
        memory.observeWrites(o);
    }

    /** The highest guest-physical address + 1 of any region. */
    long gpaEnd() {
        long end = 0;
        for (MemRegion e : entries) {
            end = Math.max(end, e.guestPhysAddr() + e.size());
        }
        return end;
    }

    private static boolean overlaps(long a, long alen, long b, long blen) {
        return a < b + blen && b < a + alen;
    }

    static String describe(MemRegion e) {
        return String.format("region gpa 0x%x size 0x%x uaddr 0x%x", e.guestPhysAddr(), e.size(), e.userAddr());
    }

    /** Unmaps every region and closes its fd. */
    @Override
    public void close() {
        memory.observeWrites(null);
        regions.forEach(GuestRegion::close);
    }
}
