package dev.ferry.virtio.blk;

import dev.ferry.core.device.Device;
import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceContext;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.machine.RunState;
import dev.ferry.virtio.VirtioMmioDevice;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Config kind {@code virtio-blk}:
 * <pre>
 * { "id": "disk0", "kind": "virtio-blk", "image": "disk.img", "read-only": false, "queues": 1,
 *   "queue-size": 256, "depth": 32, "io-threads": 2, "werror": "report", "rerror": "report",
 *   "serial": "ferry-disk" }
 * </pre>
 * {@code werror}/{@code rerror}: {@code report} (IOERR to the guest) or {@code stop} (the VM stops
 * with a BLOCK_IO_ERROR event; the request is retried on {@code cont} or on a migration
 * destination). A missing or unreadable image is a config error naming the path.
 */
public final class VirtioBlkKind implements DeviceKind {
    public static final String NAME = "virtio-blk";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Set<String> options() {
        return Set.of("image", "read-only", "queues", "queue-size", "depth", "io-threads", "werror", "rerror", "serial");
    }

    /** The options as {@link BlkOptions}; every range is checked. */
    public static BlkOptions parse(DeviceOptions o) throws DeviceConfigException {
        String image = o.string("image", null);
        if (image.isEmpty()) {
            throw o.error("image", "must name a raw image file");
        }
        int queueSize = o.integer("queue-size", 256, 2, 1024);
        if (Integer.bitCount(queueSize) != 1) {
            throw o.error("queue-size", "must be a power of two from 2 to 1024, got " + queueSize);
        }
        String serial = o.string("serial", "ferry-disk");
        if (serial.getBytes(java.nio.charset.StandardCharsets.US_ASCII).length > BlkRequest.ID_BYTES) {
            throw o.error("serial", "'" + serial + "' is longer than " + BlkRequest.ID_BYTES + " bytes");
        }
        try {
            return new BlkOptions(Path.of(image), o.bool("read-only", false), o.integer("queues", 1, 1, 16),
                    queueSize, o.integer("depth", 32, 1, 4096),
                    o.integer("io-threads", 2, 1, 64),
                    BlkOptions.ErrorPolicy.parse(o.choice("werror", "report", "report", "stop")),
                    BlkOptions.ErrorPolicy.parse(o.choice("rerror", "report", "report", "stop")),
                    serial);
        } catch (IllegalArgumentException e) {
            throw new DeviceConfigException(o.path() + ": " + e.getMessage());
        }
    }

    @Override
    public void validate(DeviceOptions options) throws DeviceConfigException {
        parse(options);
    }

    @Override
    public Device create(DeviceContext context, DeviceOptions options) throws DeviceConfigException {
        BlkOptions b = parse(options);
        VirtioBlk model;
        try {
            model = new VirtioBlk(context.id(), b, context.incoming(), (device, op, reason) -> {
                Map<String, Object> data = new LinkedHashMap<>();
                data.put("device", device);
                data.put("node-name", device);
                data.put("operation", op);
                data.put("action", "stop");
                data.put("nospace", reason.contains("No space"));
                data.put("reason", reason);
                context.requestStop(RunState.IO_ERROR, "BLOCK_IO_ERROR", data);
            });
        } catch (IOException e) {
            throw options.error("image", e.getMessage());
        }
        return VirtioMmioDevice.attach(context, NAME, model);
    }
}
