package dev.ferry.vhostuser.frontend;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;

import java.io.ByteArrayOutputStream;
import java.io.IOException;

/**
 * The front-end's half of a DEVICE_STATE transfer (protocol feature 19, QEMU ≥ 8.2's
 * {@code vhost_user_set_device_state_fd}): with every ring stopped, SET_DEVICE_STATE_FD hands the
 * back-end one end of a pipe — the write end to save its internal state, the read end to load it —
 * the bytes move through the other end until the writer closes it, and CHECK_DEVICE_STATE asks
 * whether the back-end is content. A back-end that answers SET_DEVICE_STATE_FD with a descriptor
 * of its own (reply bit 8 clear) gets its bytes through that one instead. Every wait on the pipe is
 * bounded; the state is at most {@link #MAX_STATE} bytes.
 */
final class DeviceStateTransfer {
    /** The most back-end state a migration carries (far above a blk or net back-end's). */
    static final int MAX_STATE = 16 << 20;
    private static final int CHUNK = 64 << 10;

    private DeviceStateTransfer() {
    }

    /**
     * The device part of the {@code virtio} field: {@code u8 0} when the back-end keeps no state of
     * its own (or is gone), else {@code u8 1}, {@code be32 length} and the state it saved. Returns
     * the state's length, or -1 when none went.
     */
    static long writeTo(SaveStream out, VhostUserFrontend fe, long timeoutMs) throws IOException {
        byte[] state = fe == null ? null : fe.saveDeviceState(timeoutMs);
        if (state == null) {
            out.putU8(0);
            return -1;
        }
        out.putU8(1);
        out.putBe32(state.length);
        out.putBytes(state);
        return state.length;
    }

    /**
     * Reads what {@link #writeTo} wrote and gives the state to {@code fe}'s back-end; a state no
     * back-end can take fails the load. Returns the state's length, or -1 when none came.
     */
    static long readFrom(LoadStream in, VhostUserFrontend fe, String who, long timeoutMs)
            throws IOException, MigrationException {
        int flag = in.getU8();
        if (flag == 0) {
            return -1;
        }
        if (flag != 1) {
            throw new MigrationException(who + ": unknown back-end state flag " + flag + " in the stream");
        }
        int len = in.getBe32();
        if (len < 0 || len > MAX_STATE) {
            throw new MigrationException(who + ": back-end device state of " + Integer.toUnsignedString(len)
                    + " bytes; at most " + MAX_STATE);
        }
        byte[] state = new byte[len];
        in.getBytes(state, 0, len);
        if (fe == null) {
            throw new MigrationException(who + ": not connected to a back-end to take the source back-end's state");
        }
        try {
            fe.loadDeviceState(state, timeoutMs);
        } catch (VhostUserException e) {
            throw new MigrationException(who + ": " + e.getMessage(), e);
        }
        return len;
    }

    /** Saves the back-end's state: the bytes it wrote, after CHECK_DEVICE_STATE said 0. */
    static byte[] save(BackendConnection conn, long timeoutMs) throws VhostUserException {
        Fd[] pipe = Sys.pipe(Linux.O_CLOEXEC);
        Fd read = pipe[0];
        try {
            try (Fd write = pipe[1]; VhostUserMessage r = conn.call(VhostUser.SET_DEVICE_STATE_FD,
                    Payloads.deviceStateTransfer(new Payloads.DeviceStateTransfer(VhostUser.TRANSFER_SAVE,
                            VhostUser.PHASE_STOPPED)), write)) {
                Fd own = accepted(conn, r);
                if (own != null) {
                    read.close();
                    read = own;
                }
            } // our write end closes here: the back-end's copy is the only writer left
            byte[] state = readAll(conn, read, timeoutMs);
            check(conn, "saving");
            return state;
        } finally {
            read.close();
        }
    }

    /** Loads {@code state} into the back-end and has CHECK_DEVICE_STATE confirm it took it. */
    static void load(BackendConnection conn, byte[] state, long timeoutMs) throws VhostUserException {
        Fd[] pipe = Sys.pipe(Linux.O_CLOEXEC);
        Fd write = pipe[1];
        try {
            try (Fd read = pipe[0]; VhostUserMessage r = conn.call(VhostUser.SET_DEVICE_STATE_FD,
                    Payloads.deviceStateTransfer(new Payloads.DeviceStateTransfer(VhostUser.TRANSFER_LOAD,
                            VhostUser.PHASE_STOPPED)), read)) {
                Fd own = accepted(conn, r);
                if (own != null) {
                    write.close();
                    write = own;
                }
            }
            writeAll(conn, write, state, timeoutMs);
        } finally {
            write.close(); // the reader's end of input
        }
        check(conn, "loading");
    }

    /** Checks SET_DEVICE_STATE_FD's reply; returns the back-end's own descriptor when it sent one. */
    private static Fd accepted(BackendConnection conn, VhostUserMessage r) throws VhostUserException {
        long v = Payloads.u64(r);
        if ((v & 0xff) != 0) {
            throw new VhostUserException(conn.peer() + ": SET_DEVICE_STATE_FD refused (reply 0x" + Long.toHexString(v) + ")");
        }
        boolean noFd = (v & VhostUser.DEVICE_STATE_NOFD) != 0;
        if (noFd != (r.fdCount() == 0)) {
            throw new VhostUserException(conn.peer() + ": SET_DEVICE_STATE_FD's reply says " + (noFd ? "no" : "a")
                    + " descriptor but carries " + r.fdCount());
        }
        return noFd ? null : r.takeFd(0);
    }

    private static void check(BackendConnection conn, String what) throws VhostUserException {
        long v = conn.getU64(VhostUser.CHECK_DEVICE_STATE);
        if (v != 0) {
            throw new VhostUserException(conn.peer() + ": CHECK_DEVICE_STATE after " + what
                    + " the device state answered " + v + " (the back-end refused it)");
        }
    }

    private static byte[] readAll(BackendConnection conn, Fd fd, long timeoutMs) throws VhostUserException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        long buf = NativeMemory.allocate(CHUNK + Linux.POLLFD_SIZE);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            byte[] chunk = new byte[CHUNK];
            while (true) {
                await(conn, fd, buf + CHUNK, Linux.POLLIN, deadline, "the back-end's device state");
                long n = Sys.read(fd, buf, CHUNK);
                if (n <= 0) {
                    return out.toByteArray();
                }
                if (out.size() + n > MAX_STATE) {
                    throw new VhostUserException(conn.peer() + ": the device state exceeds " + MAX_STATE + " bytes");
                }
                NativeMemory.copyToArray(buf, chunk, 0, (int) n);
                out.write(chunk, 0, (int) n);
            }
        } catch (NativeCallException e) {
            throw new VhostUserException(conn.peer() + ": reading the device state failed: " + e.getMessage(), e);
        } finally {
            NativeMemory.free(buf);
        }
    }

    private static void writeAll(BackendConnection conn, Fd fd, byte[] state, long timeoutMs) throws VhostUserException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        long buf = NativeMemory.allocate(Math.max(1, state.length) + Linux.POLLFD_SIZE);
        try {
            NativeMemory.copyFromArray(state, 0, buf, state.length);
            long done = 0;
            while (done < state.length) {
                await(conn, fd, buf + state.length, Linux.POLLOUT, deadline, "the back-end to take its device state");
                done += Sys.write(fd, buf + done, state.length - done);
            }
        } catch (NativeCallException e) {
            throw new VhostUserException(conn.peer() + ": writing the device state failed: " + e.getMessage(), e);
        } finally {
            NativeMemory.free(buf);
        }
    }

    private static void await(BackendConnection conn, Fd fd, long pollfd, short events, long deadline, String what)
            throws VhostUserException {
        while (true) {
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                throw new VhostUserException.Timeout(conn.peer() + ": timed out waiting for " + what);
            }
            NativeMemory.putInt(pollfd, fd.get());
            NativeMemory.putShort(pollfd + 4, events);
            NativeMemory.putShort(pollfd + 6, (short) 0);
            if (Sys.poll(pollfd, 1, (int) Math.min(left, 1000)) > 0) {
                return; // ready, or the peer closed (read 0 / write EPIPE says which)
            }
        }
    }
}
