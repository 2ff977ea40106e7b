package dev.ferry.virtio.net;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.NetLinux;
import dev.ferry.core.sys.Sockets;

import java.net.InetSocketAddress;
import java.nio.file.Path;

/**
 * A stream socket, TCP or UNIX (QEMU's {@code -netdev stream}), framed as QEMU frames it: each
 * Ethernet frame as {@code be32 length | frame}, no virtio-net header. A frame is dropped when the
 * socket cannot take its first byte (the peer is not reading); once a frame has started the rest
 * is written, blocking for at most that frame. Receives gather what the socket has into a native
 * buffer and hand out whole frames. A length above {@link #MAX_FRAME} or the stream's end makes
 * the back-end unusable ({@link NetBackendException}); the device then stops watching it.
 */
public final class StreamBackend implements NetBackend {
    private static final int BUFFER = 4 * (MAX_FRAME + 4);
    private final Fd fd;
    private final String description;
    /** Bytes received, frames not yet handed out: [start, end) of {@link #inbox}. */
    private final long inbox;
    private int start;
    private int end;
    private boolean closed;

    private StreamBackend(Fd fd, String description) {
        this.fd = fd;
        this.description = description;
        this.inbox = NativeMemory.allocate(BUFFER);
    }

    public static StreamBackend tcp(InetSocketAddress remote) {
        return new StreamBackend(Sockets.tcpConnect(remote), "stream tcp " + remote.getHostString() + ":"
                + remote.getPort());
    }

    public static StreamBackend unix(Path path) {
        return new StreamBackend(Sockets.unixConnect(path), "stream unix " + path);
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public Fd fd() {
        return fd;
    }

    @Override
    public boolean vnetHeader() {
        return false;
    }

    @Override
    public boolean send(long buf, int length) {
        // The be32 length goes in the last 4 bytes of the header room, right before the frame.
        int frame = length - NetHeader.SIZE;
        long at = buf + NetHeader.SIZE - 4;
        NativeMemory.putInt(at, NativeMemory.BIG_ENDIAN_HOST ? frame : Integer.reverseBytes(frame));
        long total = frame + 4L;
        long off = Sockets.send(fd, at, total, NetLinux.MSG_DONTWAIT);
        if (off < 0) {
            return false; // the peer is not reading: drop at a frame boundary rather than stall the loop
        }
        while (off < total) {
            // Part of the frame is out: the rest must follow, or the framing breaks. Blocks only
            // for what is left of this one frame.
            off += Math.max(0, Sockets.send(fd, at + off, total - off, 0));
        }
        return true;
    }

    @Override
    public int receive(long buf, int capacity) {
        if (closed) {
            throw new NetBackendException(description + ": the peer closed the stream");
        }
        int frame = whole();
        if (frame < 0) {
            if (start > 0 && end - start < MAX_FRAME + 4) {
                NativeMemory.copy(inbox + start, inbox, end - start);
                end -= start;
                start = 0;
            }
            long n = Sockets.recv(fd, inbox + end, BUFFER - end, NetLinux.MSG_DONTWAIT);
            if (n == 0) {
                closed = true;
                throw new NetBackendException(description + ": the peer closed the stream");
            }
            if (n > 0) {
                end += (int) n;
            }
            frame = whole();
            if (frame < 0) {
                return -1;
            }
        }
        if (frame + NetHeader.SIZE > capacity) {
            throw new NetBackendException(description + ": a frame of " + frame + " bytes does not fit "
                    + (capacity - NetHeader.SIZE));
        }
        NetHeader.clear(buf);
        NativeMemory.copy(inbox + start + 4, buf + NetHeader.SIZE, frame);
        start += 4 + frame;
        return frame + NetHeader.SIZE;
    }

    /** The length of the whole frame at {@code start}, or -1 when it has not all arrived. */
    private int whole() {
        if (end - start < 4) {
            return -1;
        }
        int len = Integer.reverseBytes(NativeMemory.getInt(inbox + start));
        if (NativeMemory.BIG_ENDIAN_HOST) {
            len = Integer.reverseBytes(len);
        }
        if (len < 0 || len > MAX_FRAME) {
            closed = true;
            throw new NetBackendException(description + ": the peer sent a frame length of "
                    + Integer.toUnsignedString(len) + " bytes (at most " + MAX_FRAME + ")");
        }
        return end - start >= 4 + len ? len : -1;
    }

    @Override
    public void close() {
        if (fd.isOpen()) {
            fd.close();
            NativeMemory.free(inbox);
        }
    }
}
