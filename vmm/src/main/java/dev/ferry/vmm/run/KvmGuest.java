package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.cpu.guest.GuestCheck;
import dev.ferry.core.cpu.guest.GuestParams;
import dev.ferry.core.cpu.guest.GuestProgress;
import dev.ferry.core.cpu.guest.GuestVerifier;
import dev.ferry.core.cpu.kvm.BuiltInGuest;
import dev.ferry.core.cpu.kvm.KvmCpuEngine;
import dev.ferry.core.cpu.kvm.KvmMigration;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.vmm.config.VmConfig;

/**
 * Ferry's built-in guest program on a real KVM vCPU as a VM's guest: one vCPU, the working set
 * and dirty rate of the config's workload, verified by replaying the program's hash chain.
 */
final class KvmGuest implements VmGuest {
    static final long PAGES_PER_HEARTBEAT = 16;
    private final VmConfig config;
    private final GuestParams params;
    private final KvmCpuEngine cpus;
    private final Machine machine;
    private final BuiltInGuest guest;
    private volatile GuestProgress loadedProgress;

    KvmGuest(VmConfig config) {
        if (config.vcpus() != 1) {
            throw new IllegalArgumentException("the built-in KVM guest runs on one vCPU; set \"vcpus\": 1");
        }
        this.config = config;
        long wsPages = Math.min(config.workload().workingSetBytes(), config.memoryBytes() - (2L << 20)) / 4096;
        this.params = GuestParams.of(config.workload().seed(), wsPages, PAGES_PER_HEARTBEAT);
        GuestMemory memory = VmVfs.withDmaRegion(config, GuestMemory.builder().region("pc.ram", 0, config.memoryBytes()))
                .prealloc(config.prealloc()).hugetlb(config.hugetlb()).build();
        if (config.preallocBackground()) {
            memory.populateInBackground();
        }
        IoBus pio = new IoBus("pio");
        IoBus mmio = new IoBus("mmio");
        KvmCpuEngine engine;
        try {
            engine = new KvmCpuEngine(memory, 1, pio, mmio);
        } catch (RuntimeException e) {
            memory.close();
            throw e;
        }
        this.cpus = engine;
        this.machine = new Machine(config.name(), memory, engine, RunState.PRELAUNCH, pio, mmio);
        KvmMigration.register(machine, engine);
        this.guest = BuiltInGuest.attach(machine, engine, PAGES_PER_HEARTBEAT,
                config.workload().dirtyRateBytesPerSec());
    }

    @Override
    public Machine machine() {
        return machine;
    }

    @Override
    public String engineName() {
        return cpus.name();
    }

    @Override
    public void attachDrivers(VmDevices devices) {
        if (!devices.all().isEmpty()) {
            throw new IllegalStateException("the built-in KVM guest has no virtio driver yet");
        }
    }

    @Override
    public void boot() {
        BuiltInGuest.boot(machine, cpus, params);
    }

    @Override
    public void loaded() {
        loadedProgress = GuestProgress.read(machine.memory());
    }

    @Override
    public void describe(ObjectNode o) {
        GuestProgress p = GuestProgress.read(machine.memory());
        o.put("counter", p.counter());
        o.put("heartbeats", guest.heartbeats());
        o.put("exits", cpus.exits());
        o.put("pages-written", p.counter());
        if (guest.status() != null) {
            o.put("guest-status", guest.status().name().toLowerCase(java.util.Locale.ROOT));
        }
    }

    @Override
    public void verify(ObjectNode o) {
        GuestProgress loaded = loadedProgress;
        GuestCheck c = loaded != null ? GuestVerifier.verifyContinuation(machine.memory(), loaded)
                : GuestVerifier.verifyFromBoot(machine.memory());
        ObjectNode w = o.putObject("working-set");
        w.put("intact", c.ok()).put("pages", params.workingSetPages());
        if (loaded != null) {
            ObjectNode cn = o.putObject("continuation");
            GuestProgress now = GuestProgress.read(machine.memory());
            cn.put("ok", c.ok() && now.counter() > loaded.counter()).put("steps-replayed", c.stepsReplayed());
            ArrayNode problems = cn.putArray("problems");
            c.problems().forEach(problems::add);
        }
    }

    @Override
    public void close() {
        machine.close();
    }
}
