package dev.ferry.virtio.net;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every virtio-net model of Ferry's is, whatever its queues: a device named
 * {@value #NAME} with device ID 1 on a {@link NetBackend} it owns, with one native TX and one RX
 * frame buffer. {@link VirtioNet} (one pair and the control queue) and the vhost-user back-end's
 * multiqueue data plane extend it. {@link #close} runs once: the subclass stops on the device's
 * loop ({@link #stopOnLoop}), then the back-end closes and the buffers are freed.
 */
public abstract class NetDeviceModel implements VirtioDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(NetDeviceModel.class);
    public static final String NAME = "virtio-net";
    /** A frame with its header at most: the size of each native buffer. */
    public static final int BUFFER = NetHeader.SIZE + NetBackend.MAX_FRAME;
    protected final String id;
    protected final NetBackend backend;
    /** Native frame buffers of {@link #BUFFER} bytes, owned here and freed in {@link #close}. */
    protected final long txBuf;
    protected final long rxBuf;
    /** Loop-thread state: the transport's context since the last start (null before, or after a reset). */
    protected VirtioContext ctx;
    private volatile boolean closed;

    /** Owns {@code backend} from here on. */
    protected NetDeviceModel(String id, NetBackend backend) {
        this.id = id;
        this.backend = backend;
        this.txBuf = NativeMemory.allocate(BUFFER);
        this.rxBuf = NativeMemory.allocate(BUFFER);
    }

    public final NetBackend backend() {
        return backend;
    }

    @Override
    public final String name() {
        return NAME;
    }

    @Override
    public final int deviceId() {
        return Virtio.ID_NET;
    }

    /** On the device's loop as the device closes: stop watching the back-end (and whatever else runs there). */
    protected abstract void stopOnLoop();

    /** After {@link #stopOnLoop}, before the back-end closes: device-specific resources. */
    protected void closeDevice() {
    }

    @Override
    public final void close() {
        if (closed) {
            return;
        }
        closed = true;
        DeviceEventLoop loop = ctx != null ? ctx.loop() : null;
        try {
            if (loop != null) {
                loop.call(() -> {
                    stopOnLoop();
                    return null;
                });
            }
        } catch (RuntimeException e) {
            LOG.debug("{}: closing on a closed loop: {}", id, e.toString());
        }
        closeDevice();
        backend.close();
        NativeMemory.free(txBuf);
        NativeMemory.free(rxBuf);
    }
}
