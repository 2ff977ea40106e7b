package dev.ferry.core.device;

import java.util.Set;

/**
 * A kind of device a VM config can ask for ({@code "kind": "virtio-blk"}): it checks its options
 * when the config is read and builds the device when the machine is. Kinds are found with
 * {@link java.util.ServiceLoader} ({@code META-INF/services/dev.ferry.core.device.DeviceKind} in
 * the module that defines them), so adding a kind touches neither the config parser nor the VMM.
 */
public interface DeviceKind {
    /** The config's {@code kind} value. */
    String name();

    /** The option names an entry may have besides {@code id} and {@code kind}. */
    Set<String> options();

    /** Checks an entry's options; the exception names the field ({@code devices[0].image: ...}). */
    void validate(DeviceOptions options) throws DeviceConfigException;

    /** Builds the device on the machine in {@code context}. */
    Device create(DeviceContext context, DeviceOptions options) throws DeviceConfigException;
}
