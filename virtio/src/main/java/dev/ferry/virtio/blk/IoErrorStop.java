package dev.ferry.virtio.blk;

/**
 * Outbound port: an I/O error under the {@code stop} policy. The VMM stops the VM (run state
 * {@code io-error}) and emits QEMU's {@code BLOCK_IO_ERROR} event. Called on the device's event
 * loop; implementations must not stop the VM on the calling thread (stopping pauses that loop).
 */
@FunctionalInterface
public interface IoErrorStop {
    /**
     * @param device    the device id
     * @param operation {@code "read"} or {@code "write"}
     * @param reason    what failed, with the errno's text
     */
    void stopForIoError(String device, String operation, String reason);
}
