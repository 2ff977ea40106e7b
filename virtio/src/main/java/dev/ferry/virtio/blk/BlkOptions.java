package dev.ferry.virtio.blk;

import java.nio.file.Path;

/**
 * How a virtio-blk device is configured (config kind {@code virtio-blk}).
 *
 * @param image       the raw image file
 * @param readOnly    offer VIRTIO_BLK_F_RO and refuse writes
 * @param queues      request queues (MQ when more than one)
 * @param queueSize   entries per queue (a power of two, 2..1024)
 * @param depth       requests in flight to the image at most, across queues (QEMU has no cap; Ferry
 *                    bounds what the I/O threads hold)
 * @param ioThreads   threads doing the image I/O, off the vCPU and event-loop threads
 * @param werror      what an image write error does: report it to the guest (IOERR) or stop the VM
 * @param rerror      the same for read errors
 * @param serial      GET_ID's answer (at most 20 bytes)
 */
public record BlkOptions(Path image, boolean readOnly, int queues, int queueSize, int depth, int ioThreads,
                         ErrorPolicy werror, ErrorPolicy rerror, String serial) {
    /** QEMU's werror/rerror actions Ferry supports. */
    public enum ErrorPolicy {
        /** The request completes with VIRTIO_BLK_S_IOERR (QEMU's {@code report}). */
        REPORT,
        /** The request is parked and the VM stops with a BLOCK_IO_ERROR event; it is retried on
         * {@code cont} and carried across a migration (QEMU's {@code stop}). */
        STOP;

        public static ErrorPolicy parse(String s) {
            return switch (s) {
                case "report" -> REPORT;
                case "stop" -> STOP;
                default -> throw new IllegalArgumentException("'" + s + "' is not an error policy (report or stop)");
            };
        }
    }

    public BlkOptions {
        if (queues < 1 || queues > 16) {
            throw new IllegalArgumentException("queues must be 1..16, got " + queues);
        }
        if (queueSize < 2 || queueSize > 1024 || Integer.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("queue-size must be a power of two from 2 to 1024, got " + queueSize);
        }
        if (depth < 1 || depth > 4096) {
            throw new IllegalArgumentException("depth must be 1..4096, got " + depth);
        }
        if (ioThreads < 1 || ioThreads > 64) {
            throw new IllegalArgumentException("io-threads must be 1..64, got " + ioThreads);
        }
        if (serial.getBytes(java.nio.charset.StandardCharsets.US_ASCII).length > BlkRequest.ID_BYTES) {
            throw new IllegalArgumentException("serial '" + serial + "' is longer than 20 bytes");
        }
    }

    /** A read-write disk with one 256-entry queue, 32 requests in flight on 2 I/O threads, errors reported. */
    public static BlkOptions of(Path image) {
        return new BlkOptions(image, false, 1, 256, 32, 2, ErrorPolicy.REPORT, ErrorPolicy.REPORT, "ferry-disk");
    }

    public BlkOptions withErrorPolicy(ErrorPolicy both) {
        return new BlkOptions(image, readOnly, queues, queueSize, depth, ioThreads, both, both, serial);
    }

    public BlkOptions withReadOnly(boolean ro) {
        return new BlkOptions(image, ro, queues, queueSize, depth, ioThreads, werror, rerror, serial);
    }
}
