package dev.ferry.virtio.net;

import dev.ferry.core.sys.Fd;

/**
 * Where a virtio-net device's frames go and come from: a TAP interface, a datagram socket or a
 * stream socket. The device owns the back-end and closes it once; its {@link #fd} goes on the
 * device event loop (readable: {@link #receive} has a frame or a stream's bytes), so frames move
 * on the loop thread, never on a vCPU's.
 *
 * <p>Frames travel in a native buffer that starts with room for the 12-byte {@link NetHeader}:
 * a back-end with {@link #vnetHeader} (TAP) sends and receives that header with the frame, the
 * others (sockets, as QEMU's {@code -netdev dgram/stream}) carry the bare Ethernet frame and leave
 * a zero header in front of what they receive.
 *
 * <p>Loop thread only (and the thread that closes the device).
 */
public interface NetBackend extends AutoCloseable {
    /** The device's frame buffers hold this much: header, and a 64 KiB frame with its Ethernet header. */
    int MAX_FRAME = 65536 + 14;

    /** {@code "dgram 127.0.0.1:40000 -> 127.0.0.1:5555"}, for reports and errors. */
    String describe();

    /** The fd to watch for readability. */
    Fd fd();

    /** True when frames carry the virtio-net header to and from the back-end (checksum flags pass through). */
    boolean vnetHeader();

    /**
     * Sends the frame at {@code buf}: {@code length} bytes counting the 12-byte header in front.
     * False when the back-end could not take it now (a full TAP queue): the frame is dropped, as
     * a NIC drops what its link cannot carry.
     *
     * @throws dev.ferry.core.sys.NativeCallException on an error of the back-end (a refused
     *         datagram, a closed stream); the device counts it and goes on
     */
    boolean send(long buf, int length);

    /**
     * Receives one frame into {@code buf} ({@code capacity} bytes, header included): returns the
     * length counting the 12-byte header, or -1 when no whole frame is ready.
     *
     * @throws NetBackendException when the back-end is gone (a stream's end) or sent something no
     *         frame can be (a hostile stream length); the device stops watching it
     */
    int receive(long buf, int capacity);

    /**
     * Drops every frame already queued for receiving, without blocking, and returns how many. A
     * vhost-user back-end calls it when a front-end connects: frames that arrived while no guest
     * ring ran belong to no one now, and a NIC without receive buffers drops them too. A stream
     * back-end keeps its bytes (dropping part of a stream would lose its framing).
     */
    default int discardQueued() {
        return 0;
    }

    @Override
    void close();
}
