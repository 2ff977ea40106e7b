package dev.ferry.virtio.e2e;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;

import java.io.IOException;
import java.util.Map;

/**
 * A device model that, with {@link #refuseAfterReset} set, cannot start again once the driver
 * reset it — as a vhost-user device whose back-end is gone refuses ({@code VhostUserDevice.start}
 * throws, naming the socket): the transport answers the driver's DRIVER_OK with NEEDS_RESET and the
 * device serves nothing until another reset and a start that works. Everything else is the wrapped model's.
 */
final class StartRefusingModel implements VirtioDeviceModel {
    private final VirtioDeviceModel inner;
    volatile boolean refuseAfterReset;
    private volatile boolean refusing;
    volatile int refusedStarts;

    StartRefusingModel(VirtioDeviceModel inner) {
        this.inner = inner;
    }

    @Override
    public void start(VirtioContext context) {
        if (refusing && refuseAfterReset) {
            refusedStarts++;
            throw new IllegalStateException(name() + ": the back-end is not connected; the device serves nothing"
                    + " until it reconnects");
        }
        inner.start(context);
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public int deviceId() {
        return inner.deviceId();
    }

    @Override
    public int stateVersion() {
        return inner.stateVersion();
    }

    @Override
    public long features() {
        return inner.features();
    }

    @Override
    public int queueCount() {
        return inner.queueCount();
    }

    @Override
    public int queueMaxSize() {
        return inner.queueMaxSize();
    }

    @Override
    public byte[] config() {
        return inner.config();
    }

    @Override
    public void restoreConfig(byte[] config) throws MigrationException {
        inner.restoreConfig(config);
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        inner.writeConfig(offset, size, value);
    }

    @Override
    public void queueNotified(int queue) {
        inner.queueNotified(queue);
    }

    @Override
    public void quiesce() {
        inner.quiesce();
    }

    @Override
    public void reset() {
        refusing = refuseAfterReset;
        inner.reset();
    }

    @Override
    public void save(SaveStream out) throws IOException {
        inner.save(out);
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        inner.load(in, version);
    }

    @Override
    public void commitLoad() {
        inner.commitLoad();
    }

    @Override
    public boolean externalDataPlane() {
        return inner.externalDataPlane();
    }

    @Override
    public void describe(Map<String, Object> into) {
        inner.describe(into);
    }

    @Override
    public void close() {
        inner.close();
    }
}
