package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.machine.Machine;

/**
 * The guest a Ferry VMM runs, on whichever engine: it builds the machine, boots (or, on a
 * destination, waits for the migrated state), and checks itself — the proof a demo or a test
 * gives that a migration lost nothing.
 */
interface VmGuest extends AutoCloseable {
    Machine machine();

    /** {@code "soft"} or {@code "kvm"}. */
    String engineName();

    /**
     * The config's devices are on the machine: give the guest its drivers for them (the soft
     * engine runs a guest virtio driver per disk). Called once, before {@link #boot} or an
     * incoming migration.
     */
    void attachDrivers(VmDevices devices);

    /** First start of a fresh VM: fill the working set (soft) or load the program (kvm). */
    void boot();

    /** On a destination, after the state loaded and before the VM starts: remember it. */
    void loaded();

    /** Engine and progress counters for {@code x-ferry-guest}. */
    void describe(ObjectNode into);

    /**
     * With the guest paused: checks every page it owns, and — when {@link #loaded()} ran — that
     * it continued exactly from the loaded state. Writes the verdict into {@code into}.
     */
    void verify(ObjectNode into);

    /**
     * The digest that must match across a migration: all of guest memory, except what the guest
     * declared free (a balloon's hinted region), whose contents a migration need not carry.
     */
    default long memoryDigest() {
        return machine().memory().digest();
    }

    @Override
    void close();
}
