package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.vhostuser.proto.VhostUserException;

import java.util.Arrays;
import java.util.Map;

/**
 * vhost-user-net: a virtio NIC (ID 1) whose rx0 and tx0 queues an external back-end (DPDK
 * testpmd, Ferry's own) serves; a third queue exists (where a control queue sits) but CTRL_VQ is
 * not offered, so a driver gets no service there. The front-end provides MAC and STATUS itself (config
 * {@code mac[6] | le16 status = LINK_UP}); MRG_RXBUF when the back-end offers it. No control
 * queue (QEMU serves it in the VMM; this front-end does not offer CTRL_VQ), so no GUEST_ANNOUNCE:
 * after a migration the destination asks the back-end to announce the guest with SEND_RARP
 * (when it offers RARP), as QEMU does.
 */
public final class VhostUserNet extends VhostUserDevice {
    public static final String NAME = "vhost-user-net";
    public static final int QUEUE_SIZE = 256;
    private final byte[] mac;
    private volatile long rarpsSent;

    public VhostUserNet(String id, VhostUserOptions options, Machine machine) throws VhostUserException {
        super(id, options, machine, 3, 2, QUEUE_SIZE);
        this.mac = options.mac().clone();
    }

    @Override
    protected void checkBackend(VhostUserFrontend f) {
    }

    /**
     * Receive buffers wait for frames and a back-end sends what it took at once (DPDK uses a
     * buffer as it pops it): the stop takes GET_VRING_BASE as it comes.
     */
    @Override
    protected boolean completesOnItsOwn(int queue) {
        return false;
    }

    @Override
    protected long deviceFeatureMask() {
        return 1L << VirtioNet.F_MRG_RXBUF;
    }

    @Override
    protected long frontendFeatures() {
        return 1L << VirtioNet.F_MAC | 1L << VirtioNet.F_STATUS;
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int deviceId() {
        return Virtio.ID_NET;
    }

    @Override
    public int stateVersion() {
        return 1;
    }

    @Override
    public byte[] config() {
        byte[] c = Arrays.copyOf(mac, 8);
        c[6] = 1; // VIRTIO_NET_S_LINK_UP
        return c;
    }

    @Override
    public void restoreConfig(byte[] c) throws MigrationException {
        if (c.length != 8 || !Arrays.equals(Arrays.copyOf(c, 6), mac)) {
            throw new MigrationException(who() + ": the source's NIC config does not carry this NIC's MAC");
        }
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // read-only
    }

    /** A migrated guest is announced by the back-end: SEND_RARP once the rings run on the destination. */
    @Override
    protected void afterStart(VhostUserFrontend f, VirtioContext context) throws VhostUserException {
        if (loadedFromMigration && !Virtio.has(context.features(), VirtioNet.F_GUEST_ANNOUNCE)) {
            loadedFromMigration = false;
            if (f.sendRarp(mac)) {
                rarpsSent++;
            }
        }
    }

    @Override
    protected void describeDevice(Map<String, Object> into) {
        into.put("rarps-sent", rarpsSent);
    }
}
