package dev.ferry.vfio.migration;

import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.NonIterableSave;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.io.IOException;

/**
 * One VFIO device's section, QEMU's {@code savevm_vfio_handlers}: idstr {@code <name>/vfio},
 * instance 0, version 1; the source half in {@link VfioSaveSide}, the destination half in
 * {@link VfioLoadSide}; switchover-ack needed exactly when the device has PRE_COPY.
 */
final class VfioLiveHandler implements LiveSaveHandler, NonIterableSave {
    private final String idstr;
    private final MigCapabilities caps;
    private final VfioSaveSide save;
    private final VfioLoadSide load;

    VfioLiveHandler(VfioDevice device, MigCapabilities caps, Object lock, DeviceStateControl control,
                    VfioMigrationStats stats, VfioDeviceConfig config) {
        this.idstr = device.name() + "/vfio";
        this.caps = caps;
        this.save = new VfioSaveSide(device, caps, lock, control, stats, config);
        this.load = new VfioLoadSide(device, caps, lock, control, stats, config);
    }

    /** PRE_COPY or PRE_COPY_P2P: the device streams pre-copy data while it runs. */
    static boolean isPrecopy(VfioDeviceState s) {
        return s == VfioDeviceState.PRE_COPY || s == VfioDeviceState.PRE_COPY_P2P;
    }

    @Override
    public String idstr() {
        return idstr;
    }

    @Override
    public int instanceId() {
        return 0;
    }

    @Override
    public int version() {
        return 1;
    }

    @Override
    public void saveSetup(SaveStream out) throws IOException, MigrationException {
        save.saveSetup(out);
    }

    @Override
    public boolean saveIterate(SaveStream out) throws IOException, MigrationException {
        return save.saveIterate(out);
    }

    @Override
    public long pendingEstimate() {
        return save.pendingEstimate();
    }

    @Override
    public long pendingExact() {
        return save.pendingExact();
    }

    @Override
    public void saveComplete(SaveStream out) throws IOException, MigrationException {
        save.saveComplete(out);
    }

    /** The config section (QEMU's {@code vfio_save_state}), in the downtime window. */
    @Override
    public void saveState(SaveStream out) throws IOException, MigrationException {
        save.saveState(out);
    }

    @Override
    public void saveCleanup(boolean succeeded) {
        save.saveCleanup(succeeded);
    }

    @Override
    public void loadSetup(LoadContext context) throws MigrationException {
        load.loadSetup(context);
    }

    @Override
    public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
        load.loadState(in, versionId);
    }

    @Override
    public void loadComplete() throws MigrationException {
        load.loadComplete();
    }

    @Override
    public void loadCleanup(boolean succeeded) {
        load.loadCleanup(succeeded);
    }

    @Override
    public boolean switchoverAckNeeded() {
        return caps.hasAll(MigCapabilities.PRE_COPY);
    }
}
