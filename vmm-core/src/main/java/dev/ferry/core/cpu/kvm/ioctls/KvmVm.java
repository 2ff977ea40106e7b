package dev.ferry.core.cpu.kvm.ioctls;

import dev.ferry.core.cpu.kvm.bindings.KvmCaps;
import dev.ferry.core.cpu.kvm.bindings.KvmClearDirtyLog;
import dev.ferry.core.cpu.kvm.bindings.KvmClockData;
import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmDirtyLog;
import dev.ferry.core.cpu.kvm.bindings.KvmEnableCap;
import dev.ferry.core.cpu.kvm.bindings.KvmIoctls;
import dev.ferry.core.cpu.kvm.bindings.KvmIoeventfd;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqLevel;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqRouting;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqchip;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqfd;
import dev.ferry.core.cpu.kvm.bindings.KvmPitConfig;
import dev.ferry.core.cpu.kvm.bindings.KvmPitState2;
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
 * irqchip and PIT with their interrupt wiring (IRQ lines, irqfd, ioeventfd, GSI routing) and vCPU
 * creation. Owns its fd and a few small structs allocated once; the vCPUs it
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
    private final KvmIrqLevel irqLevel = new KvmIrqLevel();
    private final KvmIrqfd irqfdArg = new KvmIrqfd();
    private final KvmIoeventfd ioeventfdArg = new KvmIoeventfd();
    private final KvmPitConfig pitConfig = new KvmPitConfig();
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

    /**
     * KVM_IRQ_LINE: drives {@code gsi} of the in-kernel irqchip to {@code level} through the
     * default routing (GSI 0-15 to PIC and IOAPIC, 16-23 to the IOAPIC) or the table set with
     * {@link #setGsiRouting}. For a device model that has no eventfd of its own (an emulated
     * device handled on the vCPU thread, or the machine thread); an edge is a raise then a
     * lower. Any thread; calls are serialised on this VM's struct.
     */
    public synchronized void irqLine(int gsi, boolean level) {
        checkGsi(gsi);
        irqLevel.set(gsi, level);
        Sys.ioctl(fd, KvmIoctls.KVM_IRQ_LINE, irqLevel.address(), "KVM_IRQ_LINE(gsi " + gsi + ")");
    }

    /**
     * KVM_IRQFD: from now on a write to {@code eventfd} raises {@code gsi} inside KVM, so a
     * device thread (virtio queue, vhost back-end, timer) interrupts the guest without a vCPU
     * exit or an ioctl of its own. With {@code resamplefd} (KVM_IRQFD_FLAG_RESAMPLE, needs
     * KVM_CAP_IRQFD_RESAMPLE) the GSI is level-triggered: it stays asserted until the guest EOIs
     * it, then KVM signals {@code resamplefd} so the device can re-assert if it still needs
     * service. Called on the machine thread while wiring devices (and again after a restore);
     * the caller keeps both eventfds open until {@link #irqfdDeassign}.
     */
    public synchronized void irqfd(Fd eventfd, int gsi, Fd resamplefd) {
        checkGsi(gsi);
        int flags = resamplefd == null ? 0 : KvmConstants.KVM_IRQFD_FLAG_RESAMPLE;
        irqfdArg.set(eventfd.get(), gsi, flags, resamplefd == null ? 0 : resamplefd.get());
        Sys.ioctl(fd, KvmIoctls.KVM_IRQFD, irqfdArg.address(), "KVM_IRQFD(" + eventfd + " → gsi " + gsi
                + (resamplefd == null ? "" : ", resample " + resamplefd) + ")");
    }

    /**
     * KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN: {@code eventfd} no longer raises {@code gsi}
     * (both must match the assignment). Machine thread, before the eventfd is closed or the
     * device is torn down.
     */
    public synchronized void irqfdDeassign(Fd eventfd, int gsi) {
        checkGsi(gsi);
        irqfdArg.set(eventfd.get(), gsi, KvmConstants.KVM_IRQFD_FLAG_DEASSIGN, 0);
        Sys.ioctl(fd, KvmIoctls.KVM_IRQFD, irqfdArg.address(), "KVM_IRQFD(deassign " + eventfd + " from gsi " + gsi
                + ")");
    }

    /**
     * KVM_IOEVENTFD on MMIO: a guest write of {@code len} bytes (1, 2, 4 or 8; 0 for any width)
     * to guest-physical {@code addr} signals {@code eventfd} inside KVM, without an exit to user
     * space; the device thread polling the eventfd does the work (a virtio queue-notify doorbell).
     * With {@code datamatch} (needs a non-zero {@code len}) only writes of exactly that value
     * signal. KVM refuses a second registration of the same address, length, datamatch and
     * eventfd with EEXIST. Machine thread, while wiring devices.
     */
    public synchronized void ioeventfd(long addr, int len, Long datamatch, Fd eventfd) {
        ioeventfd(addr, len, datamatch, eventfd, 0, "KVM_IOEVENTFD");
    }

    /**
     * KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN: removes the registration made by
     * {@link #ioeventfd} with the same arguments. Machine thread, before the eventfd is closed.
     */
    public synchronized void ioeventfdDeassign(long addr, int len, Long datamatch, Fd eventfd) {
        ioeventfd(addr, len, datamatch, eventfd, KvmConstants.KVM_IOEVENTFD_FLAG_DEASSIGN,
                "KVM_IOEVENTFD(deassign)");
    }

    private void ioeventfd(long addr, int len, Long datamatch, Fd eventfd, int flags, String what) {
        if (len != 0 && len != 1 && len != 2 && len != 4 && len != 8) {
            throw new IllegalArgumentException(what + ": length " + len + " is none of 0, 1, 2, 4, 8");
        }
        if (len == 0 && datamatch != null) {
            throw new IllegalArgumentException(what + ": a datamatch needs a length (1, 2, 4 or 8), not 0");
        }
        if (datamatch != null) {
            flags |= KvmConstants.KVM_IOEVENTFD_FLAG_DATAMATCH;
        }
        ioeventfdArg.set(datamatch == null ? 0 : datamatch, addr, len, eventfd.get(), flags);
        Sys.ioctl(fd, KvmIoctls.KVM_IOEVENTFD, ioeventfdArg.address(), String.format("%s(%s at 0x%x, len %d%s)", what,
                eventfd, addr, len, datamatch == null ? "" : ", datamatch 0x" + Long.toHexString(datamatch)));
    }

    /**
     * KVM_GET_IRQCHIP: the state of chip {@code chipId} (KVM_IRQCHIP_PIC_MASTER, PIC_SLAVE or
     * IOAPIC) into {@code out}, for a migration source (vCPUs paused) or a diagnostic. Needs
     * {@link #createIrqchip()}. Any thread; {@code out} belongs to the caller.
     */
    public void getIrqchip(int chipId, KvmIrqchip out) {
        out.setChipId(chipId);
        Sys.ioctl(fd, KvmIoctls.KVM_GET_IRQCHIP, out.address(), "KVM_GET_IRQCHIP(chip " + chipId + ")");
    }

    /**
     * KVM_SET_IRQCHIP: loads {@code in} into the chip its {@code chip_id} names, on a migration
     * destination before any vCPU runs. Any thread; vCPUs paused.
     */
    public void setIrqchip(KvmIrqchip in) {
        Sys.ioctl(fd, KvmIoctls.KVM_SET_IRQCHIP, in.address(), "KVM_SET_IRQCHIP(chip " + in.chipId() + ")");
    }

    /**
     * KVM_SET_GSI_ROUTING: replaces the whole GSI routing table with the {@code nr} entries of
     * {@code routing} (after KVM_CREATE_IRQCHIP the kernel installs a default table; setting one
     * drops it). Machine thread, while wiring interrupts or after a restore.
     */
    public void setGsiRouting(KvmIrqRouting routing) {
        Sys.ioctl(fd, KvmIoctls.KVM_SET_GSI_ROUTING, routing.address(), "KVM_SET_GSI_ROUTING(" + routing.nr()
                + " routes)");
    }

    /**
     * KVM_CREATE_PIT2 with KVM_PIT_SPEAKER_DUMMY: an in-kernel i8254 on ports 0x40-0x43 (and a
     * dummy speaker port 0x61), driving GSI 0. Machine thread, after {@link #createIrqchip()},
     * before vCPUs run.
     */
    public void createPit2() {
        createPit2(KvmConstants.KVM_PIT_SPEAKER_DUMMY);
    }

    /** KVM_CREATE_PIT2 with {@code kvm_pit_config.flags = flags}. */
    public synchronized void createPit2(int flags) {
        pitConfig.setFlags(flags);
        Sys.ioctl(fd, KvmIoctls.KVM_CREATE_PIT2, pitConfig.address(), "KVM_CREATE_PIT2");
    }

    /** KVM_GET_PIT2: the in-kernel PIT's state into {@code out} (migration source, vCPUs paused). */
    public void getPit2(KvmPitState2 out) {
        Sys.ioctl(fd, KvmIoctls.KVM_GET_PIT2, out.address(), "KVM_GET_PIT2");
    }

    /** KVM_SET_PIT2: loads {@code in} into the in-kernel PIT (migration destination, vCPUs paused). */
    public void setPit2(KvmPitState2 in) {
        Sys.ioctl(fd, KvmIoctls.KVM_SET_PIT2, in.address(), "KVM_SET_PIT2");
    }

    private static void checkGsi(int gsi) {
        if (gsi < 0) {
            throw new IllegalArgumentException("GSI " + gsi + " is negative");
        }
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
            irqLevel.close();
            irqfdArg.close();
            ioeventfdArg.close();
            pitConfig.close();
            NativeMemory.free(u64Arg);
        }
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}
