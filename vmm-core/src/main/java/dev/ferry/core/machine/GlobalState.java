package dev.ferry.core.machine;

import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.VmStateDescription;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * QEMU's {@code globalstate} section: the run state the VM was in when the migration stopped it,
 * so the destination resumes in the same state — running, or paused, or stopped on a disk error
 * ({@code io-error}, with its parked requests retried only on {@code cont}), as QEMU's destination
 * does in {@code process_incoming_migration_bh}. On the wire (version 1):
 * <pre>
 *   be32 size (strlen + 1) | runstate[100] (the name, NUL-padded)
 * </pre>
 * Registered by every {@link Machine}; the destination reads it through
 * {@link Machine#incomingRunState()}.
 */
final class GlobalState {
    static final String IDSTR = "globalstate";
    static final int RUNSTATE_BYTES = 100;

    private final Machine machine;
    /** On the destination: the state the stream carried, until the VM starts or stays stopped. */
    volatile RunState loaded;

    static final VmStateDescription<GlobalState> VMSTATE = VmStateDescription.<GlobalState>builder("globalstate", 1)
            .u32("size", g -> g.name().length + 1, (g, v) -> {
                if (v < 1 || v > RUNSTATE_BYTES) {
                    throw new IllegalArgumentException("run state name of " + Integer.toUnsignedString(v) + " bytes");
                }
            })
            .buffer("runstate", RUNSTATE_BYTES, g -> Arrays.copyOf(g.name(), RUNSTATE_BYTES), GlobalState::load)
            .build();

    GlobalState(Machine machine) {
        this.machine = machine;
    }

    static void register(Machine machine) {
        machine.migration().registerOptionalVmState(IDSTR, 0, VMSTATE, new GlobalState(machine), MigrationPriority.CPU - 1);
    }

    private byte[] name() {
        return machine.stateBeforeMigration().qapiName().getBytes(StandardCharsets.US_ASCII);
    }

    private void load(byte[] runstate) {
        int end = 0;
        while (end < runstate.length && runstate[end] != 0) {
            end++;
        }
        String name = new String(runstate, 0, end, StandardCharsets.US_ASCII);
        for (RunState s : RunState.values()) {
            if (s.qapiName().equals(name)) {
                loaded = s;
                machine.globalStateLoaded(s);
                return;
            }
        }
        throw new IllegalArgumentException("the source's run state '"
                + dev.ferry.core.migration.StreamText.escape(Arrays.copyOf(runstate, end)) + "' is not one this VMM knows");
    }
}
