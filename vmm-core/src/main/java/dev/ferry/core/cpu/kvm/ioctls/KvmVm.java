package dev.ferry.core.cpu.kvm.ioctls;

import dev.ferry.core.cpu.kvm.bindings.KvmCaps;
import dev.ferry.core.cpu.kvm.bindings.KvmClearDirtyLog;
import dev.ferry.core.cpu.kvm.bindings.KvmClockData;
import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmDirtyLog;
import dev.ferry.core.cpu.kvm.bindings.KvmEnableCap;
import dev.ferry.core.cpu.kvm.bindings.KvmIoctls;
import dev.ferry.core.cpu.kvm.bindings.KvmUserspaceMemoryRegion;
import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;

import java.util.HashMap;
import java.util.Map;

/**
 * A KVM VM fd: memory slots, the dirty log, the VM clock, x86 setup addresses, the in-kernel
 * irqchip and vCPU creation. Owns its fd and a few small structs allocated once; the vCPUs it
 * creates are owned by the caller (each closes its own fd and mapping).
 *
 * <p>Thread-safe: methods that fill a shared struct are {@code synchronized}. In practice the
 * machine thread sets slots up and the migration thread reads the dirty log.
 */
public final class KvmVm implements AutoCloseable {
    private static final long PAGE_MASK = Linux.PAGE_SIZE - 1;

    private final Fd fd;
    private final int vcpuMmapSize;
    private final KvmUserspaceMemoryRegion region = new KvmUserspaceMemoryRegion();
    private final KvmDirtyLog dirtyLog = new KvmDirtyLog();
    private final KvmClearDirtyLog clearLog = new KvmClearDirtyLog();
    private final KvmEnableCap enableCap = new KvmEnableCap();
    private final long u64Arg = NativeMemory.allocate(8);
    /** Slot → pages, for checking bitmaps and clear ranges before KVM sees them. */
    private final Map<Integer, Long> slotPages = new HashMap<>();
    private boolean manualDirtyLogProtect;
    private boolean irqchip;
    private boolean closed;

    KvmVm(Fd fd, int vcpuMmapSize) {
        this.fd = fd;
        this.vcpuMmapSize = vcpuMmapSize;
    }

    /**
     * KVM_CHECK_EXTENSION on the VM fd (KVM_CAP_CHECK_EXTENSION_VM): some answers are per VM,
     * e.g. KVM_CAP_XSAVE2's size or KVM_CAP_NR_MEMSLOTS.
     */
    public int checkExtension(int cap) {
        return Sys.ioctl(fd, KvmIoctls.KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION");
    }

    /**
     * KVM_SET_USER_MEMORY_REGION: guest-physical {@code [gpa, gpa + size)} is backed by this
     * process's memory at {@code hostAddress}. {@code flags}: {@code KVM_MEM_LOG_DIRTY_PAGES} to
     * track guest writes in the slot's dirty log, {@code KVM_MEM_READONLY}. Setting an existing
     * slot again changes its flags (turning the log on or off); size 0 deletes it.
     */
    public synchronized void setUserMemoryRegion(int slot, int flags, long gpa, long size, long hostAddress) {
        if (((gpa | size | hostAddress) & PAGE_MASK) != 0 || size < 0 || slot < 0) {
            throw new IllegalArgumentException(String.format("slot %d: gpa 0x%x, size 0x%x and host address 0x%x must "
                    + "be page aligned and non-negative", slot, gpa, size, hostAddress));
        }
        region.set(slot, flags, gpa, size, hostAddress);
        Sys.ioctl(fd, KvmIoctls.KVM_SET_USER_MEMORY_REGION, region.address(), "KVM_SET_USER_MEMORY_REGION");
        if (size == 0) {
            slotPages.remove(slot);
        } else {
            slotPages.put(slot, size / Linux.PAGE_SIZE);
        }
    }

    /** Registers {@code r} (its whole memfd mapping) as {@code slot} at the region's guest address. */
    public void setUserMemoryRegion(int slot, int flags, GuestRegion r) {
        setUserMemoryRegion(slot, flags, r.gpaBase(), r.size(), r.hostAddress(0));
    }

    /** Removes {@code slot} (KVM_SET_USER_MEMORY_REGION with size 0). */
    public void deleteUserMemoryRegion(int slot) {
        setUserMemoryRegion(slot, 0, 0, 0, 0);
    }

    /** Pages in {@code slot}, or -1 when this VM has no such slot. */
    public synchronized long slotPages(int slot) {
        Long p = slotPages.get(slot);
        return p == null ? -1 : p;
    }

    /**
     * KVM_GET_DIRTY_LOG: overwrites the caller's bitmap at {@code bitmapAddress} (one bit per
     * page of the slot, whole u64 words, the {@link DirtyBitmap} layout) with the pages the guest
     * wrote since the previous call. Without manual protect, KVM clears its log and
     * write-protects those pages again in the same call; with it, KVM only reports, and
     * {@link #clearDirtyLog} re-arms. The VMM's own writes never appear here.
     *
     * <p>The caller guarantees the bitmap spans {@code ceil(pages / 64)} words; prefer the
     * {@link DirtyBitmap} overload, which checks.
     */
    public synchronized void getDirtyLog(int slot, long bitmapAddress) {
        requireSlot(slot);
        dirtyLog.set(slot, bitmapAddress);
        Sys.ioctl(fd, KvmIoctls.KVM_GET_DIRTY_LOG, dirtyLog.address(), "KVM_GET_DIRTY_LOG");
    }

    /** {@link #getDirtyLog(int, long)} into {@code bitmap}, checked to cover the slot. */
    public void getDirtyLog(int slot, DirtyBitmap bitmap) {
        checkBitmap(slot, bitmap);
        getDirtyLog(slot, bitmap.address());
    }

    /** Whether KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 can be enabled on this VM. */
    public boolean manualDirtyLogProtectAvailable() {
        return (checkExtension(KvmCaps.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
                & KvmConstants.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) != 0;
    }

    /**
     * Enables KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (ENABLE, not INITIALLY_SET): from now on
     * KVM_GET_DIRTY_LOG only reports and {@link #clearDirtyLog} re-protects ranges, which
     * shortens the window between reading the log and sending the pages (QEMU's way).
     *
     * @throws KvmUnsupportedException when the host lacks the capability
     */
    public synchronized void enableManualDirtyLogProtect() {
        enableManualDirtyLogProtect(false);
    }

    /**
     * As {@link #enableManualDirtyLogProtect()}; with {@code initiallySet} (KVM_DIRTY_LOG_INITIALLY_SET)
     * enabling dirty logging on a slot write-protects nothing and reports every page dirty until
     * it is cleared.
     */
    public synchronized void enableManualDirtyLogProtect(boolean initiallySet) {
        if (!manualDirtyLogProtectAvailable()) {
            throw new KvmUnsupportedException("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is not available on this host");
        }
        if (initiallySet && (checkExtension(KvmCaps.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
                & KvmConstants.KVM_DIRTY_LOG_INITIALLY_SET) == 0) {
            throw new KvmUnsupportedException("KVM_DIRTY_LOG_INITIALLY_SET is not available on this host");
        }
        enableCap(KvmCaps.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KvmConstants.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE
                | (initiallySet ? KvmConstants.KVM_DIRTY_LOG_INITIALLY_SET : 0));
        manualDirtyLogProtect = true;
    }

    public synchronized boolean manualDirtyLogProtect() {
        return manualDirtyLogProtect;
    }

    /**
     * KVM_CLEAR_DIRTY_LOG: for each set bit {@code i} of the bitmap at {@code bitmapAddress},
     * clears page {@code firstPage + i} in KVM's log and write-protects it again. Needs
     * {@link #enableManualDirtyLogProtect()}. {@code firstPage} must be a multiple of 64, and so
     * must {@code numPages} unless the range ends at the slot's end.
     */
    public synchronized void clearDirtyLog(int slot, long firstPage, int numPages, long bitmapAddress) {
        if (!manualDirtyLogProtect) {
            throw new IllegalStateException("KVM_CLEAR_DIRTY_LOG needs manual dirty log protect: call "
                    + "enableManualDirtyLogProtect() first");
        }
        long pages = requireSlot(slot);
        if (firstPage < 0 || numPages < 0 || firstPage + numPages > pages || (firstPage & 63) != 0
                || ((numPages & 63) != 0 && firstPage + numPages != pages)) {
            throw new IllegalArgumentException("slot " + slot + " (" + pages + " pages): cannot clear " + numPages
                    + " pages from page " + firstPage + "; the start must be a multiple of 64 and so must the count "
                    + "unless the range ends at the slot's end");
        }
        clearLog.set(slot, firstPage, numPages, bitmapAddress);
        Sys.ioctl(fd, KvmIoctls.KVM_CLEAR_DIRTY_LOG, clearLog.address(), "KVM_CLEAR_DIRTY_LOG");
    }

    /** Clears the whole slot's pages that are set in {@code bitmap} (word 0 = page 0). */
    public void clearDirtyLog(int slot, DirtyBitmap bitmap) {
        checkBitmap(slot, bitmap);
        clearDirtyLog(slot, 0, (int) slotPages(slot), bitmap.address());
    }

    /** KVM_ENABLE_CAP on the VM with {@code args[0] = arg0}. */
    public synchronized void enableCap(int cap, long arg0) {
        enableCap.set(cap, 0, arg0);
        Sys.ioctl(fd, KvmIoctls.KVM_ENABLE_CAP, enableCap.address(), "KVM_ENABLE_CAP(" + KvmCaps.name(cap) + ")");
    }

    /**
     * KVM_CREATE_VCPU: vCPU {@code id} (its APIC ID), with its {@code kvm_run} page mapped. The
     * caller owns the result. Create every vCPU after {@link #createIrqchip()} if there is one.
     */
    public KvmVcpu createVcpu(int id) {
        int r = Sys.ioctl(fd, KvmIoctls.KVM_CREATE_VCPU, id, "KVM_CREATE_VCPU");
        return new KvmVcpu(new Fd(r, "kvm-vcpu" + id), id, vcpuMmapSize);
    }

    /** KVM_GET_CLOCK: the VM's kvmclock (ns) into {@code out}. */
    public void getClock(KvmClockData out) {
        Sys.ioctl(fd, KvmIoctls.KVM_GET_CLOCK, out.address(), "KVM_GET_CLOCK");
    }

    /**
     * KVM_SET_CLOCK: sets the kvmclock from {@code in}. On a migration destination, pass the
     * source's value plus the downtime (or set KVM_CLOCK_REALTIME) so guest time never goes back.
     */
    public void setClock(KvmClockData in) {
        Sys.ioctl(fd, KvmIoctls.KVM_SET_CLOCK, in.address(), "KVM_SET_CLOCK");
    }

    /**
     * KVM_SET_TSS_ADDR: three pages of guest-physical space, outside RAM and MMIO, that Intel
     * VMX needs for real-mode emulation (QEMU uses 0xfffbd000). Harmless elsewhere.
     */
    public void setTssAddr(long gpa) {
        Sys.ioctl(fd, KvmIoctls.KVM_SET_TSS_ADDR, gpa, "KVM_SET_TSS_ADDR");
    }

    /** KVM_SET_IDENTITY_MAP_ADDR: one page for VMX's real-mode identity map (QEMU: 0xfeffc000). */
    public synchronized void setIdentityMapAddr(long gpa) {
        if (closed) {
            throw new IllegalStateException(fd + ": VM already closed");
        }
        NativeMemory.putLong(u64Arg, gpa);
        Sys.ioctl(fd, KvmIoctls.KVM_SET_IDENTITY_MAP_ADDR, u64Arg, "KVM_SET_IDENTITY_MAP_ADDR");
    }

    /**
     * KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and local APICs. Call before creating vCPUs.
     * With it, HLT no longer exits to user space (KVM waits for an interrupt itself), and
     * KVM_GET/SET_LAPIC work.
     */
    public synchronized void createIrqchip() {
        Sys.ioctl(fd, KvmIoctls.KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
        irqchip = true;
    }

    public synchronized boolean hasIrqchip() {
        return irqchip;
    }

    private long requireSlot(int slot) {
        Long p = slotPages.get(slot);
        if (p == null) {
            throw new IllegalArgumentException("this VM has no memory slot " + slot);
        }
        return p;
    }

    private void checkBitmap(int slot, DirtyBitmap bitmap) {
        long pages = slotPages(slot);
        if (pages < 0) {
            throw new IllegalArgumentException("this VM has no memory slot " + slot);
        }
        if (bitmap.pages() < pages) {
            throw new IllegalArgumentException("slot " + slot + " has " + pages + " pages but the bitmap only "
                    + bitmap.pages());
        }
    }

    /** Closes the VM fd (KVM frees the VM once its vCPUs are closed too). Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            fd.close();
        } finally {
            region.close();
            dirtyLog.close();
            clearLog.close();
            enableCap.close();
            NativeMemory.free(u64Arg);
        }
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}
