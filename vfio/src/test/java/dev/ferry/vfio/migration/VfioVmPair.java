package dev.ferry.vfio.migration;

import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.TestVm;
import dev.ferry.migration.transport.MigrationTransports;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A running source VM and a destination VM waiting in inmigrate, each with the same emulated VFs
 * ({@code vf0}, {@code vf1}, ...) attached through {@link VfioMigration}, migrated in-process by the
 * real engine over a loopback socket. Source VFs churn their internal state while they run;
 * destination VFs do not (dirty-rate 0), so what they hold after the VM starts is exactly what
 * they loaded. Every SET on the source VFs is logged in order across devices ({@link #setLog}).
 */
final class VfioVmPair implements AutoCloseable {
    static final long RAM = 1 << 20;
    static final Duration WAIT = Duration.ofSeconds(30);

    final TestVm source;
    final TestVm destination;
    final List<EmulatedVfioDevice> srcVfs = new ArrayList<>();
    final List<EmulatedVfioDevice> dstVfs = new ArrayList<>();
    final List<VfioMigration> srcMigs = new ArrayList<>();
    final List<VfioMigration> dstMigs = new ArrayList<>();
    final List<String> setLog = Collections.synchronizedList(new ArrayList<>());
    private final AtomicReference<SourceMigration> current = new AtomicReference<>();

    /** How one migration ended on both sides. */
    record Outcome(MigrationStatus source, String sourceError, MigrationStatus destination, String destinationError,
                   Long destinationMemoryDigest, SourceMigration sourceMigration) {
        @Override
        public String toString() {
            return "source " + source.qapiName() + " (" + sourceError + "), destination " + destination.qapiName()
                    + " (" + destinationError + ")";
        }
    }

    static Builder builder() {
        return new Builder();
    }

    static final class Builder {
        private final List<String> src = new ArrayList<>();
        private final List<String> dst = new ArrayList<>();
        private boolean dmaWriter;
        private PhaseHook.Phase hookPhase = PhaseHook.Phase.NONE;
        private Runnable hook = () -> { };

        /**
         * One VF: its source flags (capabilities, state, faults) and extra destination flags;
         * the destination VF gets the source's capabilities and state size.
         */
        Builder vf(String srcFlags, String dstExtra) {
            src.add(srcFlags);
            dst.add(dstExtra);
            return this;
        }

        Builder vf(String srcFlags) {
            return vf(srcFlags, "");
        }

        /** The first source VF DMA-writes random guest pages every millisecond while it runs. */
        Builder dmaWriter() {
            dmaWriter = true;
            return this;
        }

        Builder hook(PhaseHook.Phase phase, Runnable action) {
            hookPhase = phase;
            hook = action;
            return this;
        }

        VfioVmPair build() {
            return new VfioVmPair(this);
        }
    }

    private VfioVmPair(Builder b) {
        source = TestVm.builder("source").ram(RAM).running().build();
        destination = TestVm.builder("destination").ram(RAM).build();
        try {
            for (int i = 0; i < b.src.size(); i++) {
                String name = "vf" + i;
                EmulatedVfSpec s = EmulatedVfSpec.parse(b.src.get(i));
                EmulatedVfioDevice sv = i == 0 && b.dmaWriter
                        ? new DmaWritingVf(name, s, new GuestDmaSpace(source.memory()), RAM, true)
                        : new EmulatedVfioDevice(name, s, new GuestDmaSpace(source.memory()));
                source.machine().addDevice(sv);
                srcVfs.add(sv);
                srcMigs.add(VfioMigration.attach(source.machine(), new RecordingVfioDevice(sv, setLog)));
                EmulatedVfSpec d = EmulatedVfSpec.parse(destinationFlags(s, b.dst.get(i)));
                EmulatedVfioDevice dv = new EmulatedVfioDevice(name, d, new GuestDmaSpace(destination.memory()));
                destination.machine().addDevice(dv);
                dstVfs.add(dv);
                dstMigs.add(VfioMigration.attach(destination.machine(), dv));
            }
            if (b.hookPhase != PhaseHook.Phase.NONE) {
                source.machine().migration().registerLive(new PhaseHook(b.hookPhase, b.hook), MigrationPriority.DEVICE);
                destination.machine().migration().registerLive(new PhaseHook(PhaseHook.Phase.NONE, () -> { }),
                        MigrationPriority.DEVICE);
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** The source's capabilities and state size, no churn, plus {@code extra}. */
    private static String destinationFlags(EmulatedVfSpec s, String extra) {
        String caps = s.withoutFaults().toFlags().replace(",no-dma-log", "");
        return caps + ",state=" + s.stateBytes() + ",initial=" + s.initialBytes() + ",dirty-rate=0"
                + (extra.isEmpty() ? "" : "," + extra);
    }

    /** The migration running now (for hooks that cancel it). */
    SourceMigration current() {
        return current.get();
    }

    /** Migrates source to destination over {@code transports}; waits for both ends. */
    Outcome migrate(MigrationTransports transports, MigrationCapabilities caps) throws Exception {
        return migrate(transports, caps, true);
    }

    /** As {@link #migrate(MigrationTransports, MigrationCapabilities)}; {@code autostart} false is {@code -S}. */
    Outcome migrate(MigrationTransports transports, MigrationCapabilities caps, boolean autostart) throws Exception {
        DestinationMigration dst = new DestinationMigration(destination.machine(), transports, caps,
                MigrationEventSink.NONE, autostart);
        dst.digestMemoryAtLoad(true);
        String bound = dst.listen("tcp:127.0.0.1:0");
        SourceMigration src = new SourceMigration(source.machine(), transports,
                MigrationParameters.defaults().withMaxBandwidth(0), caps, MigrationEventSink.NONE);
        current.set(src);
        // Each running source VF has changed its state before the migration starts: the churn
        // thread's first step takes tens of milliseconds, which a fast migration may not last.
        if (source.machine().isRunning()) {
            for (EmulatedVfioDevice vf : srcVfs) {
                try {
                    vf.advance(8);
                } catch (IllegalStateException e) {
                    // its data plane is not running (a fault test's device): nothing churns
                }
            }
        }
        src.start(bound);
        MigrationStatus s = src.await(WAIT);
        MigrationStatus d;
        try {
            d = dst.await(Duration.ofSeconds(10));
        } catch (TimeoutException e) {
            dst.abort();
            d = dst.await(Duration.ofSeconds(10));
        }
        return new Outcome(s, src.info().errorDesc(), d, dst.errorDesc(), dst.memoryDigestAtLoad(), src);
    }

    @Override
    public void close() {
        source.close();
        destination.close();
    }
}
