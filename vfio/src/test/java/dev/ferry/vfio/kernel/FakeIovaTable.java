package dev.ferry.vfio.kernel;

import dev.ferry.vfio.device.IovaRange;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The mappings of one fake IOMMU domain — a type1 container's or an iommufd IOAS's — keyed by
 * IOVA, unsigned. Its own lock, never held while calling out, so a device's data plane (holding
 * the device lock) can translate while the fake kernel (holding its lock) maps.
 */
final class FakeIovaTable {
    /** One mapping: {@code [iova, iova + length)} backed by this process's memory at {@code userVa}. */
    record Area(long iova, long length, long userVa) {
        long last() {
            return iova + length - 1;
        }
    }

    private final TreeMap<Long, Area> areas = new TreeMap<>(Long::compareUnsigned);

    /** Whether any mapping intersects {@code [iova, last]}. */
    synchronized boolean intersects(long iova, long last) {
        Map.Entry<Long, Area> e = areas.floorEntry(last);
        return e != null && Long.compareUnsigned(e.getValue().last(), iova) >= 0;
    }

    synchronized void insert(Area a) {
        if (intersects(a.iova(), a.last())) {
            throw new IllegalStateException("overlapping insert " + a);
        }
        areas.put(a.iova(), a);
    }

    /** The mappings intersecting {@code [iova, last]}, in IOVA order. */
    synchronized List<Area> intersecting(long iova, long last) {
        List<Area> out = new ArrayList<>();
        Map.Entry<Long, Area> before = areas.lowerEntry(iova);
        if (before != null && Long.compareUnsigned(before.getValue().last(), iova) >= 0) {
            out.add(before.getValue());
        }
        out.addAll(areas.subMap(iova, true, last, true).values());
        return out;
    }

    synchronized void remove(Area a) {
        areas.remove(a.iova());
    }

    /** The lowest page-aligned IOVA at or above {@code from} with {@code length} bytes free. */
    synchronized long firstFree(long from, long length, long align) {
        long candidate = from;
        for (Area a : areas.tailMap(0L, true).values()) {
            if (Long.compareUnsigned(a.last(), candidate) < 0) {
                continue;
            }
            if (Long.compareUnsigned(candidate + length - 1, a.iova()) < 0) {
                return candidate;
            }
            candidate = (a.last() + align) & -align;
        }
        return candidate;
    }

    /**
     * The host address of {@code [iova, iova + length)}, which must lie inside one mapping: what
     * the IOMMU does for a device's DMA. Anything else is an IOMMU fault.
     */
    synchronized long translate(long iova, long length) {
        Map.Entry<Long, Area> e = areas.floorEntry(iova);
        if (e == null || length <= 0 || Long.compareUnsigned(iova + length - 1, e.getValue().last()) > 0) {
            throw new IllegalArgumentException("IOMMU fault: IOVA [0x" + Long.toHexString(iova) + ", +0x"
                    + Long.toHexString(length) + ") is not mapped");
        }
        Area a = e.getValue();
        return a.userVa() + (iova - a.iova());
    }

    synchronized List<IovaRange> ranges() {
        return areas.values().stream().map(a -> new IovaRange(a.iova(), a.length())).toList();
    }

    synchronized List<Area> areas() {
        return List.copyOf(areas.values());
    }

    synchronized long clear() {
        long bytes = areas.values().stream().mapToLong(Area::length).sum();
        areas.clear();
        return bytes;
    }
}
