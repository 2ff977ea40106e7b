package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.cpu.soft.ContinuationCheck;
import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftVcpuState;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.cpu.soft.WorkingSetCheck;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.vmm.config.VmConfig;

import java.util.List;

/** The soft engine's workload as a VM's guest. */
final class SoftGuest implements VmGuest {
    private final VmConfig config;
    private final SoftWorkload workload;
    private final SoftCpuEngine cpus;
    private final Machine machine;
    private volatile List<SoftVcpuState> loadedStates;

    SoftGuest(VmConfig config) {
        this.config = config;
        this.workload = new SoftWorkload(config.vcpus(), config.workload().dirtyRateBytesPerSec(),
                config.workload().workingSetBytes(), 0, config.workload().seed());
        GuestMemory memory = VmVfs.withDmaRegion(config, GuestMemory.builder().region("pc.ram", 0, config.memoryBytes()))
                .prealloc(config.prealloc()).build();
        this.cpus = new SoftCpuEngine(memory, workload);
        this.machine = new Machine(config.name(), memory, cpus, RunState.PRELAUNCH);
        cpus.registerMigration(machine.migration());
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
    public void boot() {
        if (config.workload().populate() > 0) {
            cpus.populate(config.workload().populate());
        }
    }

    @Override
    public void loaded() {
        loadedStates = cpus.snapshot();
    }

    @Override
    public void describe(ObjectNode o) {
        o.put("pages-written", cpus.pagesWritten());
        o.put("bytes-dirtied", cpus.bytesDirtied());
    }

    @Override
    public void verify(ObjectNode o) {
        WorkingSetCheck ws = SoftCpuEngine.verifyWorkingSet(machine.memory(), workload);
        ObjectNode w = o.putObject("working-set");
        w.put("intact", ws.intact()).put("pages", ws.pages()).put("written", ws.written()).put("corrupt", ws.corrupt());
        if (ws.firstCorrupt() != null) {
            w.put("first-corrupt", ws.firstCorrupt().toString());
        }
        List<SoftVcpuState> loaded = loadedStates;
        if (loaded != null) {
            ContinuationCheck c = SoftCpuEngine.verifyContinuation(machine.memory(), workload, loaded, cpus.snapshot());
            ObjectNode cn = o.putObject("continuation");
            cn.put("ok", c.ok()).put("steps-replayed", c.stepsReplayed());
            ArrayNode problems = cn.putArray("problems");
            c.problems().forEach(problems::add);
        }
    }

    @Override
    public void close() {
        machine.close();
    }
}
