package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.device.Device;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.balloon.VirtioBalloon;
import dev.ferry.vmm.qmp.QmpError;

import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The VM's balloon as QMP reaches it, QEMU's way: {@code balloon value=<bytes>},
 * {@code query-balloon}, the {@code BALLOON_CHANGE} event — throttled as QEMU's monitor throttles
 * it, at most one per second with the latest value delivered at the end of the window — and the
 * device's QOM properties {@code guest-stats} and {@code guest-stats-polling-interval} at
 * {@code /machine/peripheral/<id>} through {@code qom-get}/{@code qom-set}. Without a balloon the
 * commands fail as QEMU's do ("No balloon device has been activated").
 */
final class VmBalloon implements AutoCloseable {
    static final long THROTTLE_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final String NO_BALLOON = "No balloon device has been activated";

    private final String id;
    private final VirtioBalloon model;
    private final Vmm.Events events;
    private final ScheduledExecutorService timer;
    // Throttle state, guarded by this.
    private long windowEnds;
    private long pending = -1;
    private boolean flushScheduled;

    private VmBalloon(String id, VirtioBalloon model, Vmm.Events events) {
        this.id = id;
        this.model = model;
        this.events = events;
        if (model == null) {
            this.timer = null;
        } else {
            java.util.concurrent.ScheduledThreadPoolExecutor t = new java.util.concurrent.ScheduledThreadPoolExecutor(1,
                    r -> {
                        Thread th = new Thread(r, "ferry-balloon-events");
                        th.setDaemon(true);
                        return th;
                    });
            t.prestartAllCoreThreads(); // a thread from the start, not from the first event: a steady count
            this.timer = t;
        }
        if (model != null) {
            model.setActualListener(this::actualChanged);
        }
    }

    static VmBalloon attach(VmDevices devices, Vmm.Events events) {
        for (Device d : devices.all()) {
            if (d instanceof VirtioMmioDevice v && v.transport().model() instanceof VirtioBalloon b) {
                return new VmBalloon(d.id(), b, events);
            }
        }
        return new VmBalloon(null, null, events);
    }

    private VirtioBalloon require() throws QmpError {
        if (model == null) {
            throw QmpError.deviceNotActive(NO_BALLOON);
        }
        return model;
    }

    /** QMP balloon: {@code value} is the memory the guest should keep, in bytes. */
    void balloon(long value) throws QmpError {
        VirtioBalloon b = require();
        if (value <= 0) {
            throw QmpError.generic("Parameter 'target' expects a size");
        }
        b.setTarget(value);
    }

    /** QMP query-balloon. */
    ObjectNode query() throws QmpError {
        return QapiJson.JSON.createObjectNode().put("actual", require().actualBytes());
    }

    private String path() {
        return "/machine/peripheral/" + id;
    }

    /** qom-get of the balloon's properties. */
    JsonNode qomGet(String path, String property) throws QmpError {
        if (model == null || !path.equals(path())) {
            throw QmpError.deviceNotFound("Device '" + path + "' not found");
        }
        return switch (property) {
            case "guest-stats" -> QapiJson.JSON.valueToTree(model.guestStats().toGuestStats());
            case "guest-stats-polling-interval" -> QapiJson.JSON.getNodeFactory().numberNode(model.statsPollingInterval());
            default -> throw QmpError.generic("Property '" + id + "." + property + "' not found");
        };
    }

    /** qom-set of the polling interval, the one writable property. */
    void qomSet(String path, String property, JsonNode value) throws QmpError {
        if (model == null || !path.equals(path())) {
            throw QmpError.deviceNotFound("Device '" + path + "' not found");
        }
        if (!property.equals("guest-stats-polling-interval")) {
            throw QmpError.generic("Property '" + id + "." + property + "' not found");
        }
        if (!value.canConvertToInt() || value.asInt() < 0 || !value.isIntegralNumber()) {
            throw QmpError.generic("Parameter 'value' expects a non-negative integer");
        }
        model.setStatsPollingInterval(value.asInt());
    }

    /** The driver changed actual (a vCPU thread): emit now, or at the end of the throttle window. */
    private synchronized void actualChanged(long actualBytes) {
        long now = System.nanoTime();
        if (now - windowEnds >= 0 && !flushScheduled) {
            emit(actualBytes);
            windowEnds = now + THROTTLE_NANOS;
            return;
        }
        pending = actualBytes;
        if (!flushScheduled) {
            flushScheduled = true;
            timer.schedule(this::flush, Math.max(0, windowEnds - now), TimeUnit.NANOSECONDS);
        }
    }

    private synchronized void flush() {
        flushScheduled = false;
        if (pending >= 0) {
            emit(pending);
            pending = -1;
            windowEnds = System.nanoTime() + THROTTLE_NANOS;
        }
    }

    private void emit(long actualBytes) {
        events.emit("BALLOON_CHANGE", QapiJson.JSON.createObjectNode().put("actual", actualBytes));
    }

    @Override
    public void close() {
        if (timer != null) {
            timer.shutdownNow();
        }
    }
}
