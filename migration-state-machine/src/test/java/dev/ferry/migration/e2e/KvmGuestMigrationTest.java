package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.guest.GuestCheck;
import dev.ferry.core.cpu.guest.GuestParams;
import dev.ferry.core.cpu.guest.GuestProgram;
import dev.ferry.core.cpu.guest.GuestProgress;
import dev.ferry.core.cpu.guest.GuestVerifier;
import dev.ferry.core.cpu.kvm.BuiltInGuest;
import dev.ferry.core.cpu.kvm.KvmCpuEngine;
import dev.ferry.core.cpu.kvm.KvmMigration;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A running KVM guest (Ferry's built-in program on a real vCPU) migrates, hop after hop, to a
 * fresh VM each time: RAM at switchover equals the source's, the vCPU state arrives byte for byte,
 * the heartbeat resumes, and the guest's counter and hash chain continue exactly.
 */
@Timeout(120)
class KvmGuestMigrationTest {
    static final long MiB = 1L << 20;
    static final long RAM = 128 * MiB;
    static final GuestParams PARAMS = GuestParams.of(77, 32 * MiB / 4096, 16);
    static NettyMigrationTransports transports;

    @BeforeAll
    static void needKvmAndTheGuest() {
        assumeTrue(Kvm.available().isEmpty(), () -> "no usable /dev/kvm: " + Kvm.available().orElse(""));
        assumeTrue(GuestProgram.load().isPresent(), GuestProgram.NOT_BUILT);
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        if (transports != null) {
            transports.close();
        }
    }

    /** A machine with one KVM vCPU, the built-in guest's ports, and KVM state migration. */
    private static Machine machine(String name, KvmCpuEngine.DirtyLogMode mode, AtomicReference<KvmCpuEngine> cpus,
                                   AtomicReference<BuiltInGuest> guest, AtomicReference<KvmMigration> mig) {
        GuestMemory memory = GuestMemory.ofSize(RAM);
        IoBus pio = new IoBus("pio");
        IoBus mmio = new IoBus("mmio");
        KvmCpuEngine engine = new KvmCpuEngine(memory, 1, pio, mmio, mode);
        Machine m = new Machine(name, memory, engine, RunState.PRELAUNCH, pio, mmio);
        cpus.set(engine);
        mig.set(KvmMigration.register(m, engine));
        guest.set(BuiltInGuest.attach(m, engine, PARAMS.pagesPerHeartbeat(), 40_000_000));
        return m;
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(KvmCpuEngine.DirtyLogMode.class)
    void kvmGuestMigratesThreeTimesAndContinuesExactly(KvmCpuEngine.DirtyLogMode mode) throws Exception {
        AtomicReference<KvmCpuEngine> srcCpus = new AtomicReference<>();
        AtomicReference<BuiltInGuest> srcGuest = new AtomicReference<>();
        AtomicReference<KvmMigration> srcMig = new AtomicReference<>();
        Machine source = machine("kvm-0", mode, srcCpus, srcGuest, srcMig);
        BuiltInGuest.boot(source, srcCpus.get(), PARAMS);
        source.vmStart();
        try {
            for (int hop = 1; hop <= 3; hop++) {
                long beatsBefore = srcGuest.get().heartbeats();
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (srcGuest.get().heartbeats() < beatsBefore + 50 && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                assertTrue(srcGuest.get().heartbeats() >= beatsBefore + 50, "the guest runs before hop " + hop);

                AtomicReference<KvmCpuEngine> dstCpus = new AtomicReference<>();
                AtomicReference<BuiltInGuest> dstGuest = new AtomicReference<>();
                AtomicReference<KvmMigration> dstMig = new AtomicReference<>();
                Machine dest = machine("kvm-" + hop, mode, dstCpus, dstGuest, dstMig);
                DestinationMigration in = new DestinationMigration(dest, transports, MigrationCapabilities.defaults(),
                        MigrationEventSink.NONE, true);
                in.digestMemoryAtLoad(true);
                AtomicReference<GuestProgress> atLoad = new AtomicReference<>();
                in.beforeStart(() -> atLoad.set(GuestProgress.read(dest.memory())));
                String uri = in.listen("tcp:127.0.0.1:0");
                SourceMigration out = new SourceMigration(source, transports,
                        MigrationParameters.defaults().withMaxBandwidth(0), MigrationCapabilities.defaults(),
                        MigrationEventSink.NONE);
                out.start(uri);
                out.await(Duration.ofSeconds(60));
                in.await(Duration.ofSeconds(10));
                assertEquals(MigrationStatus.COMPLETED, in.status(), () -> "destination: " + in.errorDesc());
                assertEquals(MigrationStatus.COMPLETED, out.status(), () -> "source: " + out.info().errorDesc());
                MigrationInfo info = out.info();

                // RAM at switchover, and the vCPU state, arrived exactly.
                assertEquals(source.memory().digest(), in.memoryDigestAtLoad().longValue(), "RAM at switchover, hop " + hop);
                assertArrayEquals(srcMig.get().states().get(0).regsBytes(), dstMig.get().states().get(0).regsBytes(),
                        "registers, hop " + hop);
                assertArrayEquals(srcMig.get().states().get(0).sregsBytes(), dstMig.get().states().get(0).sregsBytes(),
                        "special registers, hop " + hop);
                assertTrue(info.downtimeMs() >= 0);
                // Guest time did not run backwards: the destination's clock starts from the source's.
                try (dev.ferry.core.cpu.kvm.bindings.KvmClockData c = new dev.ferry.core.cpu.kvm.bindings.KvmClockData()) {
                    dstCpus.get().vm().getClock(c);
                    assertTrue(c.clock() >= srcMig.get().savedClockNs(), "guest clock on the destination "
                            + c.clock() + " ns is behind the source's at switchover " + srcMig.get().savedClockNs());
                }

                // The heartbeat resumes on the destination and the guest continued exactly.
                long deadline2 = System.nanoTime() + 10_000_000_000L;
                while (dstGuest.get().heartbeats() < 50 && System.nanoTime() < deadline2) {
                    Thread.sleep(5);
                }
                assertTrue(dstGuest.get().heartbeats() >= 50, "heartbeats on the destination, hop " + hop);
                dest.vmStop(RunState.PAUSED);
                GuestProgress now = GuestProgress.read(dest.memory());
                assertTrue(now.counter() > atLoad.get().counter(), "the counter went on from its saved value");
                GuestCheck check = GuestVerifier.verifyContinuation(dest.memory(), atLoad.get());
                int h = hop;
                assertTrue(check.ok(), () -> "hop " + h + ": " + check);
                dest.vmStart();

                source.close();
                source = dest;
                srcCpus.set(dstCpus.get());
                srcGuest.set(dstGuest.get());
                srcMig.set(dstMig.get());
            }
        } finally {
            source.close();
        }
    }
}
