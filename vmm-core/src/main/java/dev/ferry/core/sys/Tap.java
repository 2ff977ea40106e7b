package dev.ferry.core.sys;

import java.nio.charset.StandardCharsets;

/**
 * A TAP interface opened through {@code /dev/net/tun} (TUNSETIFF with IFF_TAP | IFF_NO_PI, and
 * IFF_VNET_HDR with a 12-byte virtio-net header on every frame, TUNSETVNETHDRSZ), non-blocking.
 * The kernel creates the interface if it does not exist (CAP_NET_ADMIN) and removes it when the
 * last fd closes, unless it was made persistent by other means.
 */
public final class Tap {
    /** The virtio-net header with VERSION_1 / MRG_RXBUF: the size the kernel is told to expect. */
    public static final int VNET_HDR_SIZE = 12;

    private Tap() {
    }

    /** Opens (or creates) TAP interface {@code name} with a 12-byte vnet header per frame. */
    public static Fd open(String name) {
        byte[] n = name.getBytes(StandardCharsets.US_ASCII);
        if (n.length == 0 || n.length >= NetLinux.IFNAMSIZ) {
            throw new IllegalArgumentException("TAP name '" + name + "' must have 1 to " + (NetLinux.IFNAMSIZ - 1)
                    + " characters");
        }
        Fd fd = Sys.open("/dev/net/tun", Linux.O_RDWR | Linux.O_NONBLOCK | Linux.O_CLOEXEC);
        long req = NativeMemory.allocate(NetLinux.IFREQ_SIZE);
        try {
            NativeMemory.fill(req, NetLinux.IFREQ_SIZE, (byte) 0);
            NativeMemory.copyFromArray(n, 0, req, n.length);
            NativeMemory.putShort(req + NetLinux.IFR_FLAGS_OFFSET,
                    (short) (NetLinux.IFF_TAP | NetLinux.IFF_NO_PI | NetLinux.IFF_VNET_HDR));
            Sys.ioctl(fd, NetLinux.TUNSETIFF, req, "TUNSETIFF " + name);
            NativeMemory.putInt(req, VNET_HDR_SIZE);
            Sys.ioctl(fd, NetLinux.TUNSETVNETHDRSZ, req, "TUNSETVNETHDRSZ " + name);
            return new Fd(fd.release(), "tap:" + name);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        } finally {
            NativeMemory.free(req);
        }
    }
}
