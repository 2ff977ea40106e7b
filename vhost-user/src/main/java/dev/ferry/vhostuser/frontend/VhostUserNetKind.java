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
 * Config kind {@code vhost-user-net}: a virtio NIC whose rx and tx queues are served by the back-end listening on {@code socket}.
 * <pre>
 * { "id": "nic0", "kind": "vhost-user-net", "socket": "/run/vub.sock", "mac": "52:54:00:12:34:56", "reply-timeout-ms": 5000,
 *   "queues": 2 }
 * </pre>
 * {@code queues} counts rx/tx queue pairs, 1..{@value VhostUserNet#MAX_PAIRS} (default 1): above one
 * the NIC offers MQ and the back-end must serve twice as many queues. The control queue is the
 * front-end's with any number of pairs ({@link VhostUserNet}).
 * The back-end must be listening when the VM is built (on a destination too): the device
 * negotiates then, as QEMU does. An unreachable or unfit back-end is a config error naming the socket.
 */
public final class VhostUserNetKind implements DeviceKind {
    @Override
    public String name() {
        return VhostUserNet.NAME;
    }

    @Override
    public Set<String> options() {
        return Set.of("socket", "queues", "reply-timeout-ms", "mac");
    }

    @Override
    public void validate(DeviceOptions options) throws DeviceConfigException {
        VhostUserOptions.parse(options, true);
    }

    @Override
    public Device create(DeviceContext context, DeviceOptions options) throws DeviceConfigException {
        VhostUserOptions o = VhostUserOptions.parse(options, true);
        VhostUserNet model;
        try {
            model = new VhostUserNet(context.id(), o, context.machine());
        } catch (VhostUserException e) {
            throw options.error("socket", e.getMessage());
        }
        return VirtioMmioDevice.attach(context, name(), model);
    }
}
