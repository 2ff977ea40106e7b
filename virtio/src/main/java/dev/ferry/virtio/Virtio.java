package dev.ferry.virtio;

/**
 * The numbers of the virtio 1.x specification that every device and transport shares: device
 * status bits (content.tex 2.1), reserved feature bits (6) and device IDs (5).
 */
public final class Virtio {
    public static final int STATUS_ACKNOWLEDGE = 1;
    public static final int STATUS_DRIVER = 2;
    public static final int STATUS_DRIVER_OK = 4;
    public static final int STATUS_FEATURES_OK = 8;
    public static final int STATUS_NEEDS_RESET = 64;
    public static final int STATUS_FAILED = 128;

    public static final int F_INDIRECT_DESC = 28;
    public static final int F_EVENT_IDX = 29;
    public static final int F_VERSION_1 = 32;
    public static final int F_ACCESS_PLATFORM = 33;
    public static final int F_RING_PACKED = 34;

    public static final int ID_NET = 1;
    public static final int ID_BLOCK = 2;
    public static final int ID_BALLOON = 5;

    /** The most queues a device may have (QEMU's VIRTIO_QUEUE_MAX, which its stream format fixes). */
    public static final int QUEUE_MAX = 1024;

    /** InterruptStatus bits. */
    public static final int ISR_QUEUE = 1;
    public static final int ISR_CONFIG = 2;

    private Virtio() {
    }

    public static long bit(int feature) {
        return 1L << feature;
    }

    public static boolean has(long features, int feature) {
        return (features & bit(feature)) != 0;
    }
}
