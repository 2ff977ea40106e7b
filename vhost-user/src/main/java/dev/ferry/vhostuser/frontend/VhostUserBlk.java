package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.blk.VirtioBlk;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * vhost-user-blk: a virtio disk (ID 2) whose requests an external back-end (qemu-storage-daemon,
 * SPDK, Ferry's own) serves. The config space comes from the back-end (GET_CONFIG, 60 bytes as
 * QEMU 7.2 reads it; CONFIG is required, as QEMU requires it), with {@code num_queues} set to the
 * queues used. With INFLIGHT_SHMFD the back-end's in-flight region is fetched once
 * (GET_INFLIGHT_FD) and handed back before every start (SET_INFLIGHT_FD), so a back-end that
 * restarted resubmits the requests its predecessor had not completed.
 */
public final class VhostUserBlk extends VhostUserDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserBlk.class);
    public static final String NAME = "vhost-user-blk";
    /** QEMU's vhost-user-blk queue size. */
    public static final int QUEUE_SIZE = 128;
    /** {@code struct virtio_blk_config} as QEMU 7.2 reads it. */
    public static final int CONFIG_SIZE = 60;
    private static final long FEATURES = bits(1, VirtioBlk.F_SEG_MAX, 4, VirtioBlk.F_RO, VirtioBlk.F_BLK_SIZE,
            VirtioBlk.F_FLUSH, 10, VirtioBlk.F_CONFIG_WCE, VirtioBlk.F_MQ, VirtioBlk.F_DISCARD,
            VirtioBlk.F_WRITE_ZEROES);
    /** Replaced whole when the back-end's capacity changes; never written in place (the transport reads it). */
    private volatile byte[] config;
    private volatile long capacityChanges;
    private volatile VhostUserFrontend.Inflight inflight;

    public VhostUserBlk(String id, VhostUserOptions options, Machine machine) throws VhostUserException {
        super(id, options, machine, options.queues(), QUEUE_SIZE);
        byte[] c;
        try {
            c = machine.eventLoop().call(() -> frontend().getConfig(CONFIG_SIZE));
        } catch (java.util.concurrent.CompletionException e) {
            close();
            throw e.getCause() instanceof VhostUserException v ? v : new VhostUserException(e.getMessage(), e);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN).putShort(34, (short) options.queues());
        this.config = c;
    }

    private static long bits(int... b) {
        long v = 0;
        for (int x : b) {
            v |= 1L << x;
        }
        return v;
    }

    @Override
    protected void checkBackend(VhostUserFrontend f) throws VhostUserException {
        if (!f.hasProtocol(VhostUser.PF_CONFIG)) {
            throw new VhostUserException(who() + ": the back-end at " + f.socket()
                    + " lacks protocol feature CONFIG, which a vhost-user disk needs for its capacity");
        }
    }

    /**
     * The back-end's config changed (its owner resized the disk: qemu-storage-daemon's
     * {@code block_resize}): GET_CONFIG, and a new capacity goes into the config space with a
     * config interrupt for a running driver. Only the capacity is taken, as QEMU takes it; the
     * other fields keep what the driver negotiated against.
     */
    @Override
    protected boolean backendConfigChanged(VhostUserFrontend f) throws VhostUserException {
        takeCapacity(f, "its config changed");
        return true;
    }

    /** A back-end that replaced a lost one may serve a disk resized meanwhile. */
    @Override
    protected void afterReconnect(VhostUserFrontend f) {
        try {
            takeCapacity(f, "it reconnected");
        } catch (VhostUserException e) {
            backendLost(e.getMessage());
            return;
        }
        super.afterReconnect(f);
    }

    private void takeCapacity(VhostUserFrontend f, String when) throws VhostUserException {
        long now = capacityOf(f.getConfig(CONFIG_SIZE));
        byte[] c = config;
        long before = capacityOf(c);
        if (now == before) {
            return;
        }
        byte[] next = c.clone();
        ByteBuffer.wrap(next).order(ByteOrder.LITTLE_ENDIAN).putLong(0, now);
        config = next;
        capacityChanges++;
        LOG.info("{}: the back-end at {} serves {} sectors now, {} before ({}){}", who(), options.socket(),
                Long.toUnsignedString(now), Long.toUnsignedString(before), when,
                ctx != null ? "; the driver is told" : "");
        if (ctx != null) {
            ctx.configChanged();
        }
    }

    private static long capacityOf(byte[] config) {
        return ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    }

    /** Every request completes: the stop drains them. */
    @Override
    protected boolean completesOnItsOwn(int queue) {
        return true;
    }

    /** With the back-end's in-flight region its successor knows what completed; without, the driver must resubmit. */
    @Override
    protected boolean resubmitSafe() {
        return inflight != null;
    }

    @Override
    protected long deviceFeatureMask() {
        return FEATURES & (options.queues() > 1 ? ~0L : ~(1L << VirtioBlk.F_MQ));
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int deviceId() {
        return Virtio.ID_BLOCK;
    }

    @Override
    public int stateVersion() {
        return 1;
    }

    @Override
    public byte[] config() {
        return config.clone();
    }

    /** The capacity must agree (both sides serve the same image); the rest is the back-end's. */
    @Override
    public void restoreConfig(byte[] c) throws MigrationException {
        if (c.length != CONFIG_SIZE) {
            throw new MigrationException(who() + ": config space of " + c.length + " bytes; " + CONFIG_SIZE + " expected");
        }
        long mine = capacityOf(config);
        long theirs = capacityOf(c);
        if (mine != theirs) {
            throw new MigrationException(who() + ": capacity " + theirs + " sectors on the source, " + mine
                    + " from this back-end");
        }
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // writeback (CONFIG_WCE) is the only writable field; it is not offered to the driver.
    }

    @Override
    protected void beforeRingsStart(VhostUserFrontend f, VirtioContext context) throws VhostUserException {
        if (!f.hasProtocol(VhostUser.PF_INFLIGHT_SHMFD)) {
            return;
        }
        if (inflight == null) {
            inflight = f.getInflight(queueCount(), queueMaxSize());
        }
        f.setInflight(inflight);
    }

    @Override
    protected void describeDevice(Map<String, Object> into) {
        into.put("inflight-region", inflight != null);
        into.put("capacity-sectors", capacityOf(config));
        into.put("capacity-changes", capacityChanges);
    }

    @Override
    protected void closeDevice() {
        if (inflight != null) {
            inflight.close();
            inflight = null;
        }
    }
}
