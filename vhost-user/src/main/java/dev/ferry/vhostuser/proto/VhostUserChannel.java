package dev.ferry.vhostuser.proto;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sockets;
import dev.ferry.core.sys.Sys;

/**
 * The framing of one vhost-user connection (a connected AF_UNIX stream socket): a 12-byte header,
 * the payload, and descriptors as SCM_RIGHTS in the same sendmsg as the header. What arrives is
 * checked before it is believed: the version bits, a payload of at most 4096 bytes, at most eight
 * descriptors (more are closed on arrival and refused). A receive waits at most its timeout, so a
 * peer that hangs mid-message cannot hang the caller.
 *
 * <p>Once a receive fails — the peer hung up, broke the framing or timed out mid-message — the
 * stream's position is lost: the channel is broken and every later call fails at once with the
 * first reason. Sends and receives are each serialized (one lock per direction) and may run on
 * different threads. Owns the socket and two native buffers.
 */
public final class VhostUserChannel implements AutoCloseable {
    private final Fd socket;
    private final String peer;
    private final long rx;
    private final long tx;
    private final Object rxLock = new Object();
    private final Object txLock = new Object();
    private volatile String broken;
    private volatile boolean closed;

    /**
     * @param socket a connected UNIX stream socket, now owned by this channel
     * @param peer   a name for messages: the socket path and what serves it
     */
    public VhostUserChannel(Fd socket, String peer) {
        this.socket = socket;
        this.peer = peer;
        int size = VhostUser.HEADER_SIZE + VhostUser.MAX_PAYLOAD + Linux.POLLFD_SIZE;
        this.rx = NativeMemory.allocate(size);
        this.tx = NativeMemory.allocate(size);
    }

    public String peer() {
        return peer;
    }

    /** The socket, for an event loop that waits for it to become readable (or hang up). */
    public Fd socket() {
        return socket;
    }

    /** Null while usable; else why the channel broke. */
    public String brokenReason() {
        return broken;
    }

    /** Sends {@code m} with its descriptors (not closed: the peer receives duplicates). */
    public void send(VhostUserMessage m) throws VhostUserException {
        synchronized (txLock) {
            usable();
            byte[] p = m.payload();
            NativeMemory.putInt(tx, m.request());
            NativeMemory.putInt(tx + 4, m.flags());
            NativeMemory.putInt(tx + 8, p.length);
            NativeMemory.copyFromArray(p, 0, tx + VhostUser.HEADER_SIZE, p.length);
            Fd[] fds = m.fds();
            int[] nums = new int[fds.length];
            for (int i = 0; i < fds.length; i++) {
                nums[i] = fds[i].get();
            }
            try {
                Sockets.sendWithFds(socket, tx, VhostUser.HEADER_SIZE + p.length, nums);
            } catch (NativeCallException | IllegalStateException e) {
                String why = peer + ": sending " + m.name() + " failed: " + e.getMessage();
                broken = why;
                throw new VhostUserException.Disconnected(why, e);
            }
        }
    }

    /**
     * The next message, waiting at most {@code timeoutMillis} for all of it (negative: no limit).
     *
     * @throws VhostUserException.Disconnected the peer closed the connection (or it broke earlier)
     * @throws VhostUserException.Timeout      nothing, or only part of a message, came in time
     * @throws VhostUserException              a malformed header (version, size) or too many descriptors
     */
    public VhostUserMessage receive(long timeoutMillis) throws VhostUserException {
        synchronized (rxLock) {
            usable();
            long deadline = timeoutMillis < 0 ? Long.MAX_VALUE : System.nanoTime() + timeoutMillis * 1_000_000L;
            Fd[] fds = new Fd[0];
            try {
                awaitReadable(deadline, "a message");
                Sockets.Received r;
                try {
                    r = Sockets.recvWithFds(socket, rx, VhostUser.HEADER_SIZE, VhostUser.MAX_FDS, 0);
                } catch (NativeCallException e) {
                    throw fail(new VhostUserException(peer + ": receiving a header failed: " + e.getMessage(), e));
                }
                fds = r.fds();
                if (r.bytes() == 0) {
                    throw fail(new VhostUserException.Disconnected(peer + ": the peer closed the connection"));
                }
                readFully(rx + r.bytes(), VhostUser.HEADER_SIZE - r.bytes(), deadline, "the rest of a header");
                int request = NativeMemory.getInt(rx);
                int flags = NativeMemory.getInt(rx + 4);
                long size = Integer.toUnsignedLong(NativeMemory.getInt(rx + 8));
                String what = VhostUser.requestName(request);
                if ((flags & VhostUser.VERSION_MASK) != VhostUser.VERSION) {
                    throw fail(new VhostUserException(peer + ": " + what + " with version " + (flags & VhostUser.VERSION_MASK)
                            + " in flags 0x" + Integer.toHexString(flags) + " (only version 1 exists)"));
                }
                if (size > VhostUser.MAX_PAYLOAD) {
                    throw fail(new VhostUserException(peer + ": " + what + " announces a payload of " + size
                            + " bytes; at most " + VhostUser.MAX_PAYLOAD + " are allowed"));
                }
                readFully(rx + VhostUser.HEADER_SIZE, size, deadline, "the " + size + "-byte payload of " + what);
                byte[] payload = new byte[(int) size];
                NativeMemory.copyToArray(rx + VhostUser.HEADER_SIZE, payload, 0, (int) size);
                VhostUserMessage m = new VhostUserMessage(request, flags, payload, fds);
                fds = new Fd[0];
                return m;
            } finally {
                for (Fd f : fds) {
                    f.close();
                }
            }
        }
    }

    private void readFully(long at, long count, long deadline, String what) throws VhostUserException {
        long done = 0;
        while (done < count) {
            awaitReadable(deadline, what);
            long n;
            try {
                n = Sockets.recv(socket, at + done, count - done, dev.ferry.core.sys.NetLinux.MSG_DONTWAIT);
            } catch (NativeCallException e) {
                throw fail(new VhostUserException(peer + ": receiving " + what + " failed: " + e.getMessage(), e));
            }
            if (n == 0) {
                throw fail(new VhostUserException.Disconnected(peer + ": the peer hung up in the middle of " + what
                        + " (" + done + " of " + count + " bytes came)"));
            }
            if (n > 0) {
                done += n;
            }
        }
    }

    private void awaitReadable(long deadline, String what) throws VhostUserException {
        long pfd = rx + VhostUser.HEADER_SIZE + VhostUser.MAX_PAYLOAD;
        while (true) {
            long left = deadline == Long.MAX_VALUE ? -1 : (deadline - System.nanoTime()) / 1_000_000L;
            if (deadline != Long.MAX_VALUE && left <= 0) {
                throw fail(new VhostUserException.Timeout(peer + ": no answer within the reply timeout while waiting for "
                        + what));
            }
            NativeMemory.putInt(pfd, socket.get());
            NativeMemory.putShort(pfd + 4, Linux.POLLIN);
            NativeMemory.putShort(pfd + 6, (short) 0);
            int r = Sys.poll(pfd, 1, (int) Math.min(left, 1000));
            if (closed) {
                throw fail(new VhostUserException.Disconnected(peer + ": connection closed by this side"));
            }
            if (r > 0) {
                return; // readable, or hung up (recv then reads 0)
            }
        }
    }

    private VhostUserException fail(VhostUserException e) {
        if (broken == null) {
            broken = e.getMessage();
        }
        return e;
    }

    private void usable() throws VhostUserException {
        String b = broken;
        if (b != null) {
            throw new VhostUserException.Disconnected(peer + ": connection unusable: " + b);
        }
        if (closed) {
            throw new VhostUserException.Disconnected(peer + ": connection closed");
        }
    }

    /**
     * Shuts the socket down (a receive blocked on it returns) and frees everything once no call is
     * inside. Idempotent.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (socket.isOpen()) {
            Sockets.shutdown(socket);
        }
        synchronized (rxLock) {
            synchronized (txLock) {
                socket.close();
                NativeMemory.free(rx);
                NativeMemory.free(tx);
            }
        }
    }

    @Override
    public String toString() {
        return "vhost-user " + peer + (broken != null ? " (broken: " + broken + ")" : "");
    }
}
