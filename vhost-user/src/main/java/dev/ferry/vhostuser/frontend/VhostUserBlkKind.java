package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.Device;
import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceContext;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.vhostuser.proto.VhostUserException;

import java.util.Set;

/**
 * Config kind {@code vhost-user-blk}: a virtio disk served by the back-end listening on {@code socket}.
 * <pre>
 * { "id": "disk0", "kind": "vhost-user-blk", "socket": "/run/vub.sock", "queues": 1, "reply-timeout-ms": 5000 }
 * </pre>
 * The back-end must be listening when the VM is built (on a destination too): the device
 * negotiates then, as QEMU does. An unreachable or unfit back-end is a config error naming the socket.
 */
public final class VhostUserBlkKind implements DeviceKind {
    @Override
    public String name() {
        return VhostUserBlk.NAME;
    }

    /**
     * {@code socket}, {@code queues}, {@code reply-timeout-ms}; and {@code image}, the image the
     * back-end serves, which the device never opens — a soft guest's {@code x-ferry-verify} checks
     * it against the writes the guest saw acknowledged.
     */
    @Override
    public Set<String> options() {
        return Set.of("socket", "queues", "reply-timeout-ms", "image");
    }

    @Override
    public void validate(DeviceOptions options) throws DeviceConfigException {
        VhostUserOptions.parse(options, false);
    }

    @Override
    public Device create(DeviceContext context, DeviceOptions options) throws DeviceConfigException {
        VhostUserOptions o = VhostUserOptions.parse(options, false);
        VhostUserBlk model;
        try {
            model = new VhostUserBlk(context.id(), o, context.machine());
        } catch (VhostUserException e) {
            throw options.error("socket", e.getMessage());
        }
        return VirtioMmioDevice.attach(context, name(), model);
    }
}
