package dev.ferry.migration.testing;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.migration.MigrationPriority;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A {@link Machine} for stream tests: small memfd-backed RAM, {@link IdleCpus} (nothing dirties
 * memory behind the test's back), a run state of the test's choosing and, optionally, a
 * {@link TestDevice} registered as section "test-dev" instance 0 at {@link MigrationPriority#DEVICE}.
 * <pre>
 *   try (TestVm vm = TestVm.builder("src").ram(16 << 10).running().device(TestDevice.sample()).build()) {
 *       vm.memory().write(...);
 *       ... migrate vm.machine() ...
 *   }
 * </pre>
 * Owns the machine and closes it.
 */
public final class TestVm implements AutoCloseable {
    public static final int PAGE = 4096;

    private final Machine machine;
    private final IdleCpus cpus;
    private final TestDevice device;

    private TestVm(Machine machine, IdleCpus cpus, TestDevice device) {
        this.machine = machine;
        this.cpus = cpus;
        this.device = device;
    }

    public static Builder builder(String name) {
        return new Builder(name);
    }

    public Machine machine() {
        return machine;
    }

    public GuestMemory memory() {
        return machine.memory();
    }

    public IdleCpus cpus() {
        return cpus;
    }

    /** The registered test device, or null when the VM has none. */
    public TestDevice device() {
        return device;
    }

    /** Fills page {@code page} of guest RAM (counted from guest-physical 0) with {@code content}. */
    public void writePage(long page, byte[] content) {
        if (content.length != PAGE) {
            throw new IllegalArgumentException("a page is " + PAGE + " bytes, got " + content.length);
        }
        memory().write(Gpa.of(page * PAGE), content, 0, PAGE);
    }

    public byte[] readPage(long page) {
        byte[] b = new byte[PAGE];
        memory().read(Gpa.of(page * PAGE), b, 0, PAGE);
        return b;
    }

    /**
     * Fills about {@code fraction} of all pages with random bytes (the rest stay as they are) and
     * returns the page numbers written, in every region, counted by guest-physical address / 4 KiB.
     */
    public List<Long> randomizePages(long seed, double fraction) {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<Long> written = new ArrayList<>();
        byte[] buf = new byte[PAGE];
        for (GuestRegion r : memory().regions()) {
            for (long p = 0; p < r.pages(); p++) {
                if (rnd.nextDouble() < fraction) {
                    rnd.nextBytes(buf);
                    long gpa = r.gpaBase() + p * PAGE;
                    memory().write(Gpa.of(gpa), buf, 0, PAGE);
                    written.add(gpa / PAGE);
                }
            }
        }
        return written;
    }

    @Override
    public void close() {
        machine.close();
    }

    public static final class Builder {
        private final String name;
        private final GuestMemory.Builder memory = GuestMemory.builder();
        private boolean anyRegion;
        private RunState runState = RunState.PRELAUNCH;
        private TestDevice device;

        private Builder(String name) {
            this.name = name;
        }

        /** One region "pc.ram" of {@code bytes} at guest-physical 0 (what {@code GuestMemory.ofSize} makes). */
        public Builder ram(long bytes) {
            return region("pc.ram", 0, bytes);
        }

        /** An additional RAM block; block names are what the stream's RAM section carries. */
        public Builder region(String blockName, long gpaBase, long bytes) {
            memory.region(blockName, gpaBase, bytes);
            anyRegion = true;
            return this;
        }

        public Builder runState(RunState s) {
            runState = s;
            return this;
        }

        public Builder running() {
            return runState(RunState.RUNNING);
        }

        /** Registers {@code d} as section "test-dev" instance 0. */
        public Builder device(TestDevice d) {
            device = d;
            return this;
        }

        public TestVm build() {
            GuestMemory mem = anyRegion ? memory.build() : GuestMemory.ofSize(16 << 10);
            IdleCpus cpus = new IdleCpus(runState.isRunning());
            Machine m = new Machine(name, mem, cpus, runState);
            if (device != null) {
                m.migration().registerVmState(TestDevice.IDSTR, 0, TestDevice.VMSD, device, MigrationPriority.DEVICE);
            }
            return new TestVm(m, cpus, device);
        }
    }
}
