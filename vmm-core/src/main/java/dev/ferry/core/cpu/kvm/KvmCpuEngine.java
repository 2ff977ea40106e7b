package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.CpuEngine;
import dev.ferry.core.cpu.VcpuGate;
import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmCpuid2;
import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.bindings.KvmRun;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.cpu.kvm.ioctls.KvmVm;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.ClearableDirtyLog;
import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.NativeMemory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Real vCPUs through /dev/kvm: one VM, each guest memory region a KVM memory slot (the same memfd
 * mapping the rest of Ferry uses), one thread per vCPU running the KVM_RUN loop. Port-I/O and
 * MMIO exits go to the machine's buses; HLT parks the vCPU until the VM is paused and resumed;
 * SHUTDOWN, FAIL_ENTRY, INTERNAL_ERROR and any exit Ferry does not handle stop every vCPU and are
 * reported with a register dump ({@link #failure()}), never a silent hang.
 *
 * <p>Pausing closes the {@link VcpuGate} and kicks every vCPU out of KVM_RUN ({@code immediate_exit}
 * plus a signal), so even a guest that never exits stops at once. Auto-converge's throttle makes
 * each vCPU sleep {@code p / (100 - p)} of the time it spent in the guest.
 */
public final class KvmCpuEngine implements CpuEngine {
    public static final String NAME = "kvm";
    public static final String THREAD_PREFIX = "ferry-kvm-vcpu-";
    private static final Logger LOG = LoggerFactory.getLogger(KvmCpuEngine.class);

    /** The index of the vCPU the calling thread runs, or -1 on any other thread. */
    private static final ThreadLocal<Integer> CURRENT_VCPU = ThreadLocal.withInitial(() -> -1);

    private final GuestMemory memory;
    private final IoBus pio;
    private final IoBus mmio;
    private final Kvm kvm;
    private final KvmVm vm;
    private final KvmVcpu[] vcpus;
    private final Thread[] threads;
    private final boolean[] halted;
    private final VcpuGate gate = new VcpuGate(NAME, THREAD_PREFIX);
    private final AtomicLong exits = new AtomicLong();
    private final DirtyLogSource dirtyLog;
    private volatile int throttle;
    private volatile boolean closed;

    /** With the best dirty-log mode this host offers ({@link DirtyLogMode#best()}). */
    public KvmCpuEngine(GuestMemory memory, int vcpuCount, IoBus pio, IoBus mmio) {
        this(memory, vcpuCount, pio, mmio, DirtyLogMode.best());
    }

    /**
     * How KVM reports dirty pages. {@code BITMAP}: KVM_GET_DIRTY_LOG reads and re-protects in one
     * call; enabling logging write-protects all guest memory at once. {@code MANUAL_PROTECT}
     * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with INITIALLY_SET): enabling logging protects nothing —
     * every page starts dirty, as migration's first pass needs anyway — and the migration clears
     * (re-protects) each chunk just before sending it. docs/kvm.md has the measurements.
     */
    public enum DirtyLogMode {
        BITMAP, MANUAL_PROTECT;

        /**
         * MANUAL_PROTECT when the host has KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with INITIALLY_SET —
         * enabling the log then costs ~56 µs instead of ~1.2 ms per touched GiB here, and pages
         * are re-protected just before they are sent — else BITMAP.
         */
        public static DirtyLogMode best() {
            try (Kvm k = Kvm.open()) {
                int caps = k.checkExtension(dev.ferry.core.cpu.kvm.bindings.KvmCaps.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
                int both = KvmConstants.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KvmConstants.KVM_DIRTY_LOG_INITIALLY_SET;
                return (caps & both) == both ? MANUAL_PROTECT : BITMAP;
            }
        }
    }

    public KvmCpuEngine(GuestMemory memory, int vcpuCount, IoBus pio, IoBus mmio, DirtyLogMode mode) {
        this.memory = memory;
        this.pio = pio;
        this.mmio = mmio;
        this.kvm = Kvm.open();
        KvmVm v = null;
        KvmVcpu[] cpus = new KvmVcpu[vcpuCount];
        try {
            v = kvm.createVm();
            v.setTssAddr(0xfffbd000L);
            if (mode == DirtyLogMode.MANUAL_PROTECT) {
                v.enableManualDirtyLogProtect(true);
            }
            for (GuestRegion r : memory.regions()) {
                v.setUserMemoryRegion(r.index(), 0, r);
            }
            try (KvmCpuid2 cpuid = kvm.supportedCpuid()) {
                for (int i = 0; i < vcpuCount; i++) {
                    cpus[i] = v.createVcpu(i);
                    cpus[i].setCpuid2(cpuid);
                }
            }
        } catch (RuntimeException e) {
            for (KvmVcpu c : cpus) {
                if (c != null) {
                    c.close();
                }
            }
            if (v != null) {
                v.close();
            }
            kvm.close();
            throw e;
        }
        this.vm = v;
        this.dirtyLog = mode == DirtyLogMode.MANUAL_PROTECT ? new KvmManualDirtyLog() : new KvmDirtyLog();
        this.vcpus = cpus;
        this.threads = new Thread[vcpuCount];
        this.halted = new boolean[vcpuCount];
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int vcpuCount() {
        return vcpus.length;
    }

    public KvmVm vm() {
        return vm;
    }

    /** vCPU {@code i}, for boot setup and state save/restore while the VM is paused. */
    public KvmVcpu vcpu(int i) {
        return vcpus[i];
    }

    /** The MSRs the host lists for migration (KVM_GET_MSR_INDEX_LIST). */
    public int[] msrIndexList() {
        return kvm.msrIndexList();
    }

    /** KVM's dirty log over every memory slot. */
    public DirtyLogSource dirtyLog() {
        return dirtyLog;
    }

    /** Exits handled so far (I/O, MMIO, HLT...). */
    public long exits() {
        return exits.get();
    }

    public boolean isRunning() {
        return gate.isOpen();
    }

    /** Why the vCPUs stopped on their own (a fatal exit), or null. */
    public Throwable failure() {
        return gate.failure();
    }

    @Override
    public void resume() {
        for (int i = 0; i < halted.length; i++) {
            halted[i] = false;
        }
        gate.open(this::startThreads);
    }

    @Override
    public void pause() {
        gate.close(this::kickAll);
    }

    /** Gets every live vCPU thread out of KVM_RUN (or out of a pacing sleep). */
    private void kickAll() {
        for (int i = 0; i < vcpus.length; i++) {
            Thread t = threads[i];
            if (t == null || !t.isAlive()) {
                continue; // never started, or stopped on a fatal exit: nothing to kick
            }
            try {
                vcpus[i].kick();
            } catch (dev.ferry.core.sys.NativeCallException e) {
                if (e.errno() != dev.ferry.core.sys.Errno.ESRCH) { // the thread ended between the check and the signal
                    throw e;
                }
            }
            LockSupport.unpark(t);
        }
    }

    @Override
    public void setThrottlePercentage(int percentage) {
        if (percentage < 0 || percentage > 99) {
            throw new IllegalArgumentException("kvm: throttle must be 0..99, got " + percentage);
        }
        throttle = percentage;
    }

    @Override
    public int throttlePercentage() {
        return throttle;
    }

    /** Called by a device on a vCPU thread (e.g. the guest reported it finished): park this vCPU. */
    public void haltCurrentVcpu() {
        int i = CURRENT_VCPU.get();
        if (i >= 0) {
            halted[i] = true;
        }
    }

    private void startThreads() {
        for (int i = 0; i < vcpus.length; i++) {
            int index = i;
            Thread t = new Thread(() -> vcpuThread(index), THREAD_PREFIX + i);
            t.setDaemon(true);
            threads[i] = t;
            t.start();
            gate.started();
        }
    }

    private void vcpuThread(int i) {
        Throwable failure = null;
        KvmVcpu v = vcpus[i];
        CURRENT_VCPU.set(i);
        try {
            v.bindThread();
            while (gate.park()) {
                runUntilPaused(i, v);
            }
        } catch (Throwable t) {
            failure = t;
            LOG.error("kvm vCPU {} stopped: {}", i, t.getMessage());
        } finally {
            gate.exited(i, failure);
        }
    }

    private void runUntilPaused(int i, KvmVcpu v) {
        KvmRun run = v.kvmRun();
        while (gate.isOpen()) {
            if (halted[i]) {
                LockSupport.parkNanos(10_000_000L); // the guest is done; wait for a pause
                continue;
            }
            long t0 = System.nanoTime();
            int reason = v.run();
            long inGuest = System.nanoTime() - t0;
            if (reason == KvmVcpu.RUN_INTERRUPTED) {
                continue;
            }
            exits.incrementAndGet();
            switch (reason) {
                case KvmExit.KVM_EXIT_IO -> io(run);
                case KvmExit.KVM_EXIT_MMIO -> mmio(run);
                case KvmExit.KVM_EXIT_HLT -> halted[i] = true;
                default -> throw new IllegalStateException("vCPU " + i + ": " + KvmExit.name(reason) + "\n"
                        + v.dumpRegisters());
            }
            int p = throttle;
            if (p > 0) {
                LockSupport.parkNanos(inGuest * p / (100 - p));
            }
        }
    }

    private void io(KvmRun run) {
        long base = run.address();
        int direction = NativeMemory.getByte(base + KvmRun.IO_DIRECTION_OFFSET);
        int size = NativeMemory.getByte(base + KvmRun.IO_SIZE_OFFSET);
        int port = NativeMemory.getShort(base + KvmRun.IO_PORT_OFFSET) & 0xffff;
        int count = NativeMemory.getInt(base + KvmRun.IO_COUNT_OFFSET);
        long data = base + NativeMemory.getLong(base + KvmRun.IO_DATA_OFFSET_OFFSET);
        for (int k = 0; k < count; k++, data += size) {
            if (direction == KvmExit.KVM_EXIT_IO_OUT) {
                pio.write(port, size, load(data, size));
            } else {
                store(data, size, pio.read(port, size));
            }
        }
    }

    private void mmio(KvmRun run) {
        long base = run.address();
        long addr = NativeMemory.getLong(base + KvmRun.MMIO_PHYS_ADDR_OFFSET);
        int len = NativeMemory.getInt(base + KvmRun.MMIO_LEN_OFFSET);
        long data = base + KvmRun.MMIO_DATA_OFFSET;
        if (NativeMemory.getByte(base + KvmRun.MMIO_IS_WRITE_OFFSET) != 0) {
            mmio.write(addr, len, load(data, len));
        } else {
            store(data, len, mmio.read(addr, len));
        }
    }

    private static long load(long addr, int size) {
        return switch (size) {
            case 1 -> NativeMemory.getByte(addr) & 0xffL;
            case 2 -> NativeMemory.getShort(addr) & 0xffffL;
            case 4 -> NativeMemory.getInt(addr) & 0xffffffffL;
            default -> NativeMemory.getLong(addr);
        };
    }

    private static void store(long addr, int size, long v) {
        switch (size) {
            case 1 -> NativeMemory.putByte(addr, (byte) v);
            case 2 -> NativeMemory.putShort(addr, (short) v);
            case 4 -> NativeMemory.putInt(addr, (int) v);
            default -> NativeMemory.putLong(addr, v);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        gate.close(this::kickAll);
        gate.shutdown();
        for (Thread t : threads) {
            if (t != null) {
                try {
                    t.join(5000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        dirtyLog.stop();
        for (KvmVcpu c : vcpus) {
            c.close();
        }
        vm.close();
        kvm.close();
    }

    /**
     * KVM's per-slot dirty bitmap (KVM_MEM_LOG_DIRTY_PAGES + KVM_GET_DIRTY_LOG, which reads and
     * re-arms in one call). Pages the guest writes reach migration; the VMM's own writes are in
     * {@link GuestMemory#writeLog()}. Migration thread.
     */
    private final class KvmDirtyLog implements DirtyLogSource {
        private DirtyBitmap[] scratch;

        @Override
        public String name() {
            return "kvm";
        }

        @Override
        public synchronized void start() {
            List<GuestRegion> regions = memory.regions();
            scratch = new DirtyBitmap[regions.size()];
            for (GuestRegion r : regions) {
                scratch[r.index()] = new DirtyBitmap(r.pages());
                vm.setUserMemoryRegion(r.index(), KvmConstants.KVM_MEM_LOG_DIRTY_PAGES, r);
                vm.getDirtyLog(r.index(), scratch[r.index()]); // start from a clean log
                scratch[r.index()].clearAll();
            }
        }

        @Override
        public synchronized void sync(DirtyPages target) {
            if (scratch == null) {
                return;
            }
            for (GuestRegion r : memory.regions()) {
                DirtyBitmap s = scratch[r.index()];
                vm.getDirtyLog(r.index(), s);
                target.bitmap(r).drainFrom(s);
            }
        }

        @Override
        public synchronized void stop() {
            if (scratch == null) {
                return;
            }
            for (GuestRegion r : memory.regions()) {
                if (!closed) {
                    vm.setUserMemoryRegion(r.index(), 0, r);
                }
                scratch[r.index()].close();
            }
            scratch = null;
        }
    }

    /**
     * KVM's log with manual protection: {@code sync} reads (KVM_GET_DIRTY_LOG leaves the pages
     * reported and unprotected) and keeps what it read; {@link #clear} re-protects exactly those
     * pages of one chunk (KVM_CLEAR_DIRTY_LOG with the bits read), so a write that happened since
     * the read stays reported. Migration thread.
     */
    private final class KvmManualDirtyLog implements ClearableDirtyLog {
        private DirtyBitmap[] fetched;

        @Override
        public String name() {
            return "kvm (manual protect)";
        }

        @Override
        public synchronized void start() {
            List<GuestRegion> regions = memory.regions();
            fetched = new DirtyBitmap[regions.size()];
            for (GuestRegion r : regions) {
                fetched[r.index()] = new DirtyBitmap(r.pages());
                vm.setUserMemoryRegion(r.index(), KvmConstants.KVM_MEM_LOG_DIRTY_PAGES, r);
                vm.getDirtyLog(r.index(), fetched[r.index()]); // INITIALLY_SET: every page, none protected
            }
        }

        @Override
        public synchronized void sync(DirtyPages target) {
            if (fetched == null) {
                return;
            }
            for (GuestRegion r : memory.regions()) {
                DirtyBitmap f = fetched[r.index()];
                vm.getDirtyLog(r.index(), f);
                DirtyBitmap t = target.bitmap(r);
                for (long w = 0, n = f.words(); w < n; w++) {
                    t.orWord(w, f.getWord(w));
                }
            }
        }

        @Override
        public synchronized void clear(GuestRegion region, long firstPage, long pages) {
            if (fetched == null) {
                return;
            }
            DirtyBitmap f = fetched[region.index()];
            vm.clearDirtyLog(region.index(), firstPage, (int) pages, f.address() + firstPage / 8);
        }

        @Override
        public synchronized void stop() {
            if (fetched == null) {
                return;
            }
            for (GuestRegion r : memory.regions()) {
                if (!closed) {
                    vm.setUserMemoryRegion(r.index(), 0, r);
                }
                fetched[r.index()].close();
            }
            fetched = null;
        }
    }
}
