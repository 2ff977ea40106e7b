package dev.ferry.virtio.balloon;

import dev.ferry.core.device.Device;
import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceContext;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.machine.Machine;
import dev.ferry.virtio.VirtioMmioDevice;

import java.util.Set;

/**
 * Config kind {@code virtio-balloon}:
 * <pre>
 * { "id": "balloon0", "kind": "virtio-balloon", "free-page-hint": true, "stats": true,
 *   "stats-polling-interval": 0, "deflate-on-oom": false, "queue-size": 128 }
 * </pre>
 * {@code stats-polling-interval} in seconds (QEMU's {@code guest-stats-polling-interval}); 0 keeps
 * the driver's first report only. The device ({@link VirtioBalloon}) is reached through
 * {@code ((VirtioMmioDevice) device).transport().model()}.
 */
public final class VirtioBalloonKind implements DeviceKind {
    public static final String NAME = "virtio-balloon";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Set<String> options() {
        return Set.of("free-page-hint", "stats", "stats-polling-interval", "deflate-on-oom", "queue-size");
    }

    /** The options as {@link BalloonOptions}; every range is checked. */
    public static BalloonOptions parse(DeviceOptions o) throws DeviceConfigException {
        int queueSize = o.integer("queue-size", 128, 2, 1024);
        if (Integer.bitCount(queueSize) != 1) {
            throw o.error("queue-size", "must be a power of two from 2 to 1024, got " + queueSize);
        }
        return new BalloonOptions(o.bool("free-page-hint", true), o.bool("stats", true),
                o.integer("stats-polling-interval", 0, 0, 86_400), o.bool("deflate-on-oom", false), queueSize);
    }

    @Override
    public void validate(DeviceOptions options) throws DeviceConfigException {
        parse(options);
    }

    @Override
    public Device create(DeviceContext context, DeviceOptions options) throws DeviceConfigException {
        BalloonOptions b = parse(options);
        Machine m = context.machine();
        VirtioBalloon model = new VirtioBalloon(context.id(), b, m.memory(), m.migration(),
                () -> System.currentTimeMillis() / 1000);
        return VirtioMmioDevice.attach(context, NAME, model);
    }
}
