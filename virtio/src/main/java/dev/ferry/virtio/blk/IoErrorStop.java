package dev.ferry.virtio.blk;

/**
 * Outbound port: an I/O error under the {@code stop} policy. The VMM stops the VM (run state
 * {@code io-error}) and emits QEMU's {@code BLOCK_IO_ERROR} event. Called on the device's I/O
 * thread that saw the error, once per failed request; implementations must not stop the VM on the
 * calling thread (stopping drains the requests in flight, this one among them).
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
