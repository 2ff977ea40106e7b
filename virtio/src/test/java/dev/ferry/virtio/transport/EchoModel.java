package dev.ferry.virtio.transport;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;

import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A device model for transport tests that keeps a real device's rules and nothing more: on a
 * kick it pops every available chain and copies the readable bytes into the writable ones
 * (reporting what it wrote), publishes once and interrupts as the ring allows. It offers one
 * device feature ({@link #F_ECHO}), has two queues of up to 64 entries and an 8-byte read-only
 * config space, and lets the test change that config as a device would ({@link #changeConfig}).
 * Everything but the counters runs on the device loop.
 */
final class EchoModel implements VirtioDeviceModel {
    static final int DEVICE_ID = 0x2a;
    static final int F_ECHO = 0;
    static final int QUEUES = 2;
    static final int MAX_SIZE = 64;
    private final byte[] config = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, (byte) 0x88};
    final AtomicInteger starts = new AtomicInteger();
    /** Set: {@link #start} throws this, as a vhost-user device whose back-end is gone does. */
    volatile String refuseStart;
    final AtomicInteger notifications = new AtomicInteger();
    final AtomicInteger resets = new AtomicInteger();
    private volatile VirtioContext ctx;
    private final boolean external;

    EchoModel() {
        this(false);
    }

    /** {@code external}: the queues are served outside the VMM ({@link VirtioDeviceModel#externalDataPlane}). */
    EchoModel(boolean external) {
        this.external = external;
    }

    @Override
    public boolean externalDataPlane() {
        return external;
    }

    /** The context of the last start. */
    VirtioContext context() {
        return ctx;
    }

    @Override
    public String name() {
        return "virtio-echo";
    }

    @Override
    public int deviceId() {
        return DEVICE_ID;
    }

    @Override
    public int stateVersion() {
        return 1;
    }

    @Override
    public long features() {
        return 1L << F_ECHO;
    }

    @Override
    public int queueCount() {
        return QUEUES;
    }

    @Override
    public int queueMaxSize() {
        return MAX_SIZE;
    }

    @Override
    public synchronized byte[] config() {
        return config.clone();
    }

    @Override
    public void restoreConfig(byte[] c) throws MigrationException {
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
    }

    @Override
    public void start(VirtioContext context) {
        String refusal = refuseStart;
        if (refusal != null) {
            throw new IllegalStateException(refusal);
        }
        ctx = context;
        starts.incrementAndGet();
    }

    @Override
    public void queueNotified(int queue) {
        notifications.incrementAndGet();
        SplitVirtqueue vq = ctx.queue(queue);
        if (vq == null) {
            return;
        }
        DescriptorChain c;
        boolean pushed = false;
        while ((c = vq.pop()) != null) {
            byte[] b = new byte[(int) Math.min(c.readableBytes(), c.writableBytes())];
            c.reader().readFully(b);
            c.writer().writeFully(b);
            vq.push(c, b.length);
            pushed = true;
        }
        if (pushed) {
            vq.publish();
            ctx.notifyQueue(queue);
        }
    }

    /**
     * The device changes its config (byte 0 += 1) and tells the driver, on the device loop. Uses
     * the context of the last start, which stays the device's own after a reset.
     */
    void changeConfig() {
        VirtioContext c = ctx;
        c.loop().call(() -> {
            synchronized (this) {
                config[0]++;
            }
            c.configChanged();
            return null;
        });
    }

    @Override
    public void quiesce() {
    }

    @Override
    public void reset() {
        resets.incrementAndGet();
    }

    @Override
    public void save(SaveStream out) {
    }

    @Override
    public void load(LoadStream in, int version) {
    }

    @Override
    public void commitLoad() {
    }

    @Override
    public void describe(Map<String, Object> into) {
        into.put("virtio-echo", Map.of("notifications", notifications.get()));
    }

    @Override
    public void close() {
    }
}
