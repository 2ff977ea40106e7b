package dev.ferry.virtio.net;

/** A back-end that cannot go on: its peer closed the stream or broke its framing. */
public final class NetBackendException extends RuntimeException {
    public NetBackendException(String message) {
        super(message);
    }
}
