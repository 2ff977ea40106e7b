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
 *
 * <p>Each entry counts its holders: QEMU up to 7.2 sends ADD_MEM_REG (and REM_MEM_REG) once per
 * {@code vhost_dev}, and a multiqueue vhost-user-net has one {@code vhost_dev} per queue pair on
 * the same connection, each with its own view of what it added — so the second pair adds the
 * same region again (QEMU 8.0 sends these once per device). {@link #again} takes such an
 * identical region (same GPA, size, front-end address and offset) as one more holder of the
 * mapping already there; {@link #without} unmaps a region when its last holder removes it. A
 * region that only overlaps another is still refused.
 */
final class MemoryTable implements AutoCloseable {
    /** Regions QEMU may place with CONFIGURE_MEM_SLOTS; GET_MAX_MEM_SLOTS reports it. */
    static final int MAX_SLOTS = 32;
    private final List<MemRegion> entries;
    /** Per entry: how many ADD_MEM_REG of it are not yet removed (1 for SET_MEM_TABLE's). */
    private final List<Integer> holders;
    private final List<GuestRegion> regions;
    private final GuestMemory memory;
    private final DeviceMemory device;

    private MemoryTable(List<MemRegion> entries, List<Integer> holders, List<GuestRegion> regions) {
        this.entries = List.copyOf(entries);
        this.holders = List.copyOf(holders);
        this.regions = List.copyOf(regions);
        this.memory = GuestMemory.view(regions);
        this.device = new DeviceMemory(memory);
    }

    static MemoryTable empty() {
        return new MemoryTable(List.of(), List.of(), List.of());
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
            List<Integer> holders = new ArrayList<>(keep.holders);
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
                holders.add(1);
            }
            return new MemoryTable(entries, holders, regions);
        } catch (VhostUserException | RuntimeException e) {
            mapped.forEach(GuestRegion::close);
            for (int i = next; i < fds.size(); i++) {
                fds.get(i).close();
            }
            throw e;
        }
    }

    /**
     * This table with one more holder of the entry identical to {@code e} (ADD_MEM_REG of a region
     * already mapped, see the class comment), sharing this table's regions (the caller closes
     * only the new descriptor, not this table); null when no entry is identical to it.
     */
    MemoryTable again(MemRegion e) {
        int i = entries.indexOf(e);
        if (i < 0) {
            return null;
        }
        List<Integer> more = new ArrayList<>(holders);
        more.set(i, more.get(i) + 1);
        return new MemoryTable(entries, more, regions);
    }

    /** How many holders the entry identical to {@code e} has; 0 when there is none. */
    int holders(MemRegion e) {
        int i = entries.indexOf(e);
        return i < 0 ? 0 : holders.get(i);
    }

    /**
     * This table without one holder of the entry equal to {@code gone} (REM_MEM_REG; the offset
     * is not compared): returns the new table and, when that was the last holder, adds the
     * region to {@code removed}, which the caller closes once the device is off it.
     */
    MemoryTable without(MemRegion gone, List<GuestRegion> removed) throws VhostUserException {
        List<MemRegion> entries = new ArrayList<>(this.entries);
        List<Integer> holders = new ArrayList<>(this.holders);
        List<GuestRegion> regions = new ArrayList<>(this.regions);
        for (int i = 0; i < entries.size(); i++) {
            MemRegion e = entries.get(i);
            if (e.guestPhysAddr() == gone.guestPhysAddr() && e.size() == gone.size() && e.userAddr() == gone.userAddr()) {
                if (holders.get(i) > 1) {
                    holders.set(i, holders.get(i) - 1);
                } else {
                    removed.add(regions.remove(i));
                    entries.remove(i);
                    holders.remove(i);
                }
                return new MemoryTable(entries, holders, regions);
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
