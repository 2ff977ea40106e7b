package dev.ferry.core.machine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A port-I/O or MMIO address space: non-overlapping windows, each owned by one {@link BusDevice}.
 * An access no window claims behaves as on real hardware — a read returns all ones, a write is
 * dropped — and is counted, never an error that stops the guest.
 *
 * <p>Windows are added while the machine is built; lookups run on vCPU threads without locks
 * (copy-on-write array, binary search).
 */
public final class IoBus {
    private record Window(String name, long base, long length, BusDevice device) {
        boolean contains(long addr) {
            return addr - base >= 0 && addr - base < length;
        }
    }

    private final String name;
    private volatile Window[] windows = new Window[0];
    private final AtomicLong unassigned = new AtomicLong();

    public IoBus(String name) {
        this.name = name;
    }

    public synchronized void register(String deviceName, long base, long length, BusDevice device) {
        if (length <= 0 || base < 0) {
            throw new IllegalArgumentException(name + ": bad window for " + deviceName + ": base 0x"
                    + Long.toHexString(base) + ", length " + length);
        }
        for (Window w : windows) {
            if (base < w.base + w.length && w.base < base + length) {
                throw new IllegalArgumentException(name + ": " + deviceName + " [0x" + Long.toHexString(base) + ", +0x"
                        + Long.toHexString(length) + ") overlaps " + w.name);
            }
        }
        List<Window> next = new ArrayList<>(Arrays.asList(windows));
        next.add(new Window(deviceName, base, length, device));
        next.sort(Comparator.comparingLong(Window::base));
        windows = next.toArray(new Window[0]);
    }

    public synchronized void unregister(BusDevice device) {
        windows = Arrays.stream(windows).filter(w -> w.device != device).toArray(Window[]::new);
    }

    private Window find(long addr) {
        Window[] ws = windows;
        int lo = 0;
        int hi = ws.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            Window w = ws[mid];
            if (addr < w.base) {
                hi = mid - 1;
            } else if (addr - w.base >= w.length) {
                lo = mid + 1;
            } else {
                return w;
            }
        }
        return null;
    }

    /** A guest read of {@code size} bytes at {@code addr}. */
    public long read(long addr, int size) {
        Window w = find(addr);
        if (w == null) {
            unassigned.incrementAndGet();
            return size >= 8 ? -1L : (1L << (size * 8)) - 1;
        }
        return w.device.read(addr - w.base, size);
    }

    /** A guest write of {@code size} bytes at {@code addr}. */
    public void write(long addr, int size, long value) {
        Window w = find(addr);
        if (w == null) {
            unassigned.incrementAndGet();
            return;
        }
        w.device.write(addr - w.base, size, value);
    }

    /** Accesses no device claimed (QEMU's "unassigned" accesses). */
    public long unassignedAccesses() {
        return unassigned.get();
    }

    public String name() {
        return name;
    }
}
