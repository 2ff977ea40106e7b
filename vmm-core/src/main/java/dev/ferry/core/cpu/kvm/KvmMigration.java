package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmClockData;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.VmStateDescription;

import java.util.ArrayList;
import java.util.List;

/**
 * Makes a KVM machine migratable: KVM's dirty log joins the migration's dirty-log sources; each
 * vCPU's state is a {@code "cpu"} section and the VM clock a {@code "kvmclock"} section; a
 * VM-change-state handler captures them when the VM stops (after every vCPU paused) and, on a
 * destination that loaded them, writes them back when the VM starts (before the first KVM_RUN).
 *
 * <p>The clock is saved with KVM's {@code KVM_CLOCK_REALTIME} stamp; setting it back makes KVM add
 * the real time that passed in between, so guest time does not run backwards or stand still
 * across the downtime (hosts whose clocks agree — the same host, or NTP-synced ones).
 */
public final class KvmMigration implements VmChangeStateHandler {
    private final KvmCpuEngine cpus;
    private final List<KvmVcpuState> states = new ArrayList<>();
    private final Clock clock = new Clock();
    private final int[] msrIndices;

    /** The VM clock as saved at stop. */
    static final class Clock {
        long ns;
        int flags;
        long realtime;
        volatile boolean loaded;

        static final VmStateDescription<Clock> VMSTATE = VmStateDescription.<Clock>builder("kvmclock", 1)
                .u64("clock", c -> c.ns, (c, v) -> c.ns = v)
                .u32("flags", c -> c.flags, (c, v) -> c.flags = v)
                .u64("realtime", c -> c.realtime, (c, v) -> {
                    c.realtime = v;
                    c.loaded = true;
                })
                .build();
    }

    private KvmMigration(KvmCpuEngine cpus, int[] msrIndices) {
        this.cpus = cpus;
        this.msrIndices = msrIndices;
        for (int i = 0; i < cpus.vcpuCount(); i++) {
            states.add(new KvmVcpuState(i));
        }
    }

    public static KvmMigration register(Machine machine, KvmCpuEngine cpus) {
        int[] msrs = migratableMsrs(cpus.vcpu(0), cpus.vcpu(0).probeMsrs(cpus.msrIndexList()).readable());
        KvmMigration m = new KvmMigration(cpus, msrs);
        machine.migration().addDirtyLogSource(cpus.dirtyLog());
        for (KvmVcpuState s : m.states) {
            machine.migration().registerVmState("cpu", s.index(), KvmVcpuState.VMSTATE, s, MigrationPriority.CPU);
        }
        machine.migration().registerVmState("kvmclock", 0, Clock.VMSTATE, m.clock, MigrationPriority.CPU);
        machine.addVmChangeStateHandler(m, Integer.MAX_VALUE);
        return m;
    }

    /**
     * The MSRs this VM both reads and accepts back: some listed MSRs (KVM's paravirtual async-PF
     * ones, without an in-kernel LAPIC) refuse even their own value, and a restore must not fail
     * on them. Probed once, on a vCPU that has not run, by writing each its current value.
     */
    static int[] migratableMsrs(dev.ferry.core.cpu.kvm.ioctls.KvmVcpu v, int[] readable) {
        List<Integer> ok = new ArrayList<>();
        try (dev.ferry.core.cpu.kvm.bindings.KvmMsrs one = new dev.ferry.core.cpu.kvm.bindings.KvmMsrs(1)) {
            for (int index : readable) {
                one.set(0, index, 0);
                one.setNmsrs(1);
                if (v.getMsrs(one) == 1 && v.setMsrs(one) == 1) {
                    ok.add(index);
                }
            }
        }
        return ok.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The state captured at the last stop (or loaded from a stream), per vCPU. */
    public List<KvmVcpuState> states() {
        return states;
    }

    /** The VM clock (ns) saved at the last stop or loaded from a stream. */
    public long savedClockNs() {
        return clock.ns;
    }

    public int msrCount() {
        return msrIndices.length;
    }

    @Override
    public void onChange(boolean running, RunState state) {
        if (!running) {
            for (KvmVcpuState s : states) {
                s.capture(cpus.vcpu(s.index()), msrIndices);
            }
            try (KvmClockData c = new KvmClockData()) {
                cpus.vm().getClock(c);
                clock.ns = c.clock();
                clock.flags = c.flags();
                clock.realtime = c.realtime();
            }
            return;
        }
        for (KvmVcpuState s : states) {
            if (s.loaded()) {
                s.restore(cpus.vcpu(s.index()));
            }
        }
        if (clock.loaded) {
            try (KvmClockData c = new KvmClockData()) {
                c.setClock(clock.ns);
                c.setFlags(clock.flags);
                c.setRealtime(clock.realtime);
                cpus.vm().setClock(c);
            }
            clock.loaded = false;
        }
    }
}
