package dev.ferry.vfio.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.fuzz.Verdicts;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.InMemoryMigration.Incoming;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.TestVm;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.migration.VfioMigration;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fuzz target: a destination with an emulated SR-IOV VF loading a migration stream — the VFIO
 * section's framing, its device-state chunks, the VF's own state format and the RAM and run-state
 * sections around them. Whatever the bytes, the load completes or is refused with a reason, the
 * VM does not run after a refusal, and the connection is closed with every chunk released.
 * Seeds: streams the engine wrote for the same VM ({@link #main} rewrites them).
 */
class VfioStreamFuzzTest {
    static {
        System.setProperty("org.slf4j.simpleLogger.log.dev.ferry", "off");
    }

    static final long RAM = 64 << 10;
    static final String VF = "stop-copy,p2p,pre-copy,state=16K,initial=8K,dirty-rate=0,pps=0";

    static TestVm vm(String name, boolean running) {
        TestVm.Builder b = TestVm.builder(name).ram(RAM);
        TestVm vm = (running ? b.running() : b).build();
        EmulatedVfioDevice vf = new EmulatedVfioDevice("vf0", EmulatedVfSpec.parse(VF + (running ? ",seed=5" : ",seed=9")),
                new GuestDmaSpace(vm.memory()));
        vm.machine().addDevice(vf);
        VfioMigration.attach(vm.machine(), vf);
        return vm;
    }

    @FuzzTest(maxDuration = "30s")
    void destinationWithAVfLoads(byte[] stream) throws Exception {
        try (TestVm vm = vm("dst", false)) {
            Incoming r = InMemoryMigration.load(vm.machine(), stream, new MemoryTransports().chunkSize(4093));
            Verdicts.assertLoadedOrRefused(r);
            if (r.status() != MigrationStatus.COMPLETED) {
                assertTrue(r.runState() != RunState.RUNNING, "a refused load must not run the VM: " + r);
            }
            assertTrue(r.connection().isClosed(), "the destination closes its connection");
            assertEquals(0, r.connection().unreleasedChunks(), "chunks the reader did not release");
        }
    }

    /** Rewrites the seeds: {@code java -cp <test class path> dev.ferry.vfio.fuzz.VfioStreamFuzzTest src/test/resources}. */
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "src/test/resources")
                .resolve("dev/ferry/vfio/fuzz/VfioStreamFuzzTestInputs/destinationWithAVfLoads");
        Files.createDirectories(dir);
        try (TestVm src = vm("src", true)) {
            src.writePage(3, new byte[4096]);
            Files.write(dir.resolve("engine-stream-vf"), InMemoryMigration.save(src.machine()));
        }
    }
}
