package dev.ferry.core.migration;

import java.util.Map;

/**
 * One registered migration participant and its place in the order: iterable ({@link Live}) or a
 * declarative state sent once during downtime ({@link VmState}). Higher priority is saved first
 * and loaded first; equal priorities keep registration order.
 */
public sealed interface SaveEntry permits SaveEntry.Live, SaveEntry.VmState {
    String idstr();

    int instanceId();

    int version();

    int priority();

    record Live(LiveSaveHandler handler, int priority) implements SaveEntry {
        @Override
        public String idstr() {
            return handler.idstr();
        }

        @Override
        public int instanceId() {
            return handler.instanceId();
        }

        @Override
        public int version() {
            return handler.version();
        }
    }

    /**
     * A device's declarative state bound to the object that holds it. An {@code optional} one is
     * always sent, but a stream without it still loads (QEMU's {@code globalstate}, gated by
     * {@code needed}): the destination then goes on without it.
     */
    record VmState<T>(String idstr, int instanceId, VmStateDescription<T> description, T state, int priority,
                      boolean optional) implements SaveEntry {
        public VmState(String idstr, int instanceId, VmStateDescription<T> description, T state, int priority) {
            this(idstr, instanceId, description, state, priority, false);
        }

        @Override
        public int version() {
            return description.version();
        }

        public void save(SaveStream out) throws java.io.IOException {
            description.save(state, out);
        }

        public void load(LoadStream in, int version) throws java.io.IOException, MigrationException {
            description.load(state, in, version);
        }

        public Map<String, Object> describe() {
            return description.describe(state);
        }
    }
}
