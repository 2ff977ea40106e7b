package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.guest.GuestBootState;
import dev.ferry.core.cpu.guest.GuestLayout;
import dev.ferry.core.cpu.guest.GuestParams;
import dev.ferry.core.cpu.guest.GuestProgram;
import dev.ferry.core.cpu.guest.GuestStatus;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmSegment;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.machine.BusDevice;
import dev.ferry.core.machine.Machine;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * Ferry's built-in guest program ({@code cpu.guest}) on a KVM vCPU: {@link #boot} loads it and sets
 * vCPU 0 to its entry in 64-bit mode; {@link #attach} puts its two ports on the machine's port-I/O
 * bus — both on a fresh VM and on a migration destination, whose vCPU state arrives in the stream.
 *
 * <p>The heartbeat port paces the guest: the guest writes {@code pagesPerHeartbeat} pages between
 * heartbeats, and the heartbeat handler (on the vCPU thread) sleeps until the configured dirty rate
 * allows the next batch — rate control is the VMM's job; the guest just runs. The status port
 * reports start, resume, completion and faults; a final status parks the vCPU.
 */
public final class BuiltInGuest {
    private final KvmCpuEngine cpus;
    private final long nanosPerHeartbeat;
    private final AtomicLong heartbeats = new AtomicLong();
    private final AtomicReference<GuestStatus> status = new AtomicReference<>();
    private long nextDue;

    private BuiltInGuest(KvmCpuEngine cpus, long pagesPerHeartbeat, long dirtyRateBytesPerSec) {
        this.cpus = cpus;
        this.nanosPerHeartbeat = dirtyRateBytesPerSec <= 0 ? 0
                : (long) (pagesPerHeartbeat * 4096.0 * 1e9 / dirtyRateBytesPerSec);
    }

    /** Puts the heartbeat and status ports on {@code machine}'s port-I/O bus. */
    public static BuiltInGuest attach(Machine machine, KvmCpuEngine cpus, long pagesPerHeartbeat,
                                      long dirtyRateBytesPerSec) {
        BuiltInGuest g = new BuiltInGuest(cpus, pagesPerHeartbeat, dirtyRateBytesPerSec);
        machine.pio().register("ferry-guest heartbeat", GuestLayout.HEARTBEAT_PORT, 1, new BusDevice() {
            @Override
            public long read(long offset, int size) {
                return 0;
            }

            @Override
            public void write(long offset, int size, long value) {
                g.heartbeat();
            }
        });
        machine.pio().register("ferry-guest status", GuestLayout.STATUS_PORT, 1, new BusDevice() {
            @Override
            public long read(long offset, int size) {
                return 0;
            }

            @Override
            public void write(long offset, int size, long value) {
                GuestStatus s = GuestStatus.of((int) value);
                g.status.set(s);
                if (s.isFinal()) {
                    g.cpus.haltCurrentVcpu();
                }
            }
        });
        return g;
    }

    /**
     * Loads the program and its boot parameters into guest memory and points vCPU 0 at its entry
     * (long mode, ring 3, the page tables and segments the layout describes).
     */
    public static void boot(Machine machine, KvmCpuEngine cpus, GuestParams params) {
        GuestProgram program = GuestProgram.load().orElseThrow(() -> new IllegalStateException(GuestProgram.NOT_BUILT));
        GuestBootState b = GuestLayout.prepare(machine.memory(), program, params);
        KvmVcpu v = cpus.vcpu(0);
        try (KvmSregs s = new KvmSregs(); KvmRegs r = new KvmRegs()) {
            v.getSregs(s);
            segment(s.cs(), b.cs());
            for (KvmSegment d : new KvmSegment[] {s.ds(), s.es(), s.fs(), s.gs(), s.ss()}) {
                segment(d, b.data());
            }
            segment(s.tr(), b.tr());
            segment(s.ldt(), b.ldt());
            s.gdt().setBase(b.gdtBase());
            s.gdt().setLimit(b.gdtLimit());
            s.idt().setBase(b.idtBase());
            s.idt().setLimit(b.idtLimit());
            s.setCr0(b.cr0());
            s.setCr3(b.cr3());
            s.setCr4(b.cr4());
            s.setEfer(b.efer());
            v.setSregs(s);
            v.getRegs(r);
            r.setRip(b.rip());
            r.setRsp(b.rsp());
            r.setRflags(b.rflags());
            v.setRegs(r);
        }
    }

    private static void segment(KvmSegment k, GuestBootState.Segment s) {
        k.set(s.base(), s.limit(), s.selector(), s.type(), s.s(), s.db(), s.l(), s.g());
        k.setPresent(s.present());
        k.setDpl(s.dpl());
        k.setAvl(s.avl());
        k.setUnusable(s.unusable());
    }

    /** On a vCPU thread: one batch of pages was written; hold the dirty rate. */
    private void heartbeat() {
        heartbeats.incrementAndGet();
        if (nanosPerHeartbeat == 0) {
            return;
        }
        int p = cpus.throttlePercentage();
        long interval = p == 0 ? nanosPerHeartbeat : nanosPerHeartbeat * 100 / (100 - p);
        long now = System.nanoTime();
        if (nextDue == 0 || now - nextDue > 50_000_000L) {
            nextDue = now; // first beat, or after a pause: no catch-up burst
        }
        nextDue += interval;
        long wait = nextDue - now;
        if (wait > 0) {
            LockSupport.parkNanos(wait);
        }
    }

    public long heartbeats() {
        return heartbeats.get();
    }

    /** The last status the guest reported, or null. */
    public GuestStatus status() {
        return status.get();
    }
}
