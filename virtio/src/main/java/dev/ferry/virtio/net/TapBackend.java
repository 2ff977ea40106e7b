package dev.ferry.virtio.net;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Sys;
import dev.ferry.core.sys.Tap;

/**
 * A TAP interface (QEMU's {@code -netdev tap}) with IFF_VNET_HDR: every frame carries the 12-byte
 * virtio-net header both ways, so the guest's checksum-offload flags reach the kernel and the
 * kernel's DATA_VALID reaches the guest. The fd is non-blocking.
 */
public final class TapBackend implements NetBackend {
    private final Fd fd;
    private final String name;

    public TapBackend(String name) {
        this.fd = Tap.open(name);
        this.name = name;
    }

    public String name() {
        return name;
    }

    @Override
    public String describe() {
        return "tap " + name;
    }

    @Override
    public Fd fd() {
        return fd;
    }

    @Override
    public boolean vnetHeader() {
        return true;
    }

    @Override
    public boolean send(long buf, int length) {
        return Sys.writeNonBlocking(fd, buf, length) >= 0;
    }

    @Override
    public int receive(long buf, int capacity) {
        long n = Sys.readNonBlocking(fd, buf, capacity);
        if (n < 0) {
            return -1;
        }
        if (n < NetHeader.SIZE) {
            return -1; // nothing a frame can be (the kernel always writes the header)
        }
        return (int) n;
    }

    @Override
    public void close() {
        fd.close();
    }
}
