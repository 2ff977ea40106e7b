package dev.ferry.core.device;

import java.util.Map;

/**
 * A device a VM config asked for, built by its {@link DeviceKind}: it registered what it needs on
 * the machine (bus windows, interrupt line, event-loop handlers, migration state, VM-change-state
 * handler) and is closed with the machine.
 */
public interface Device extends AutoCloseable {
    /** The config's id, e.g. {@code "disk0"}. */
    String id();

    /** The kind that built it, e.g. {@code "virtio-blk"}. */
    String kind();

    /** State and counters for {@code x-ferry-devices} and the demo's report. */
    void describe(Map<String, Object> into);

    @Override
    void close();
}
