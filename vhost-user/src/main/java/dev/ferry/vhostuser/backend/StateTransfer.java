package dev.ferry.vhostuser.backend;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.virtio.VirtioDeviceModel;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;

/**
 * One DEVICE_STATE transfer (SET_DEVICE_STATE_FD, then CHECK_DEVICE_STATE): the model's own
 * migration state ({@link VirtioDeviceModel#save}/{@link VirtioDeviceModel#load}, big-endian as
 * in a migration stream) through the pipe the front-end sent. A helper thread moves the bytes, so
 * the loop never blocks on the pipe; the model is saved and loaded on the loop, with every ring
 * stopped. Owns the pipe end until the helper closes it (the writer's close is the reader's EOF).
 */
final class StateTransfer {
    /** Most state a load accepts: far above what a blk or net model saves. */
    static final int MAX_STATE = 16 << 20;
    private final boolean save;
    private final Thread mover;
    private volatile byte[] received;
    private volatile String failure;

    private StateTransfer(boolean save, Thread mover) {
        this.save = save;
        this.mover = mover;
    }

    /** SAVE: serializes the model now, and writes it to {@code pipe} (closed at the end) on a helper thread. */
    static StateTransfer save(VirtioDeviceModel model, Fd pipe) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try {
            model.save(new BytesSave(new DataOutputStream(bytes)));
        } catch (IOException | RuntimeException e) {
            pipe.close();
            throw e;
        }
        byte[] state = bytes.toByteArray();
        StateTransfer[] self = new StateTransfer[1];
        Thread t = new Thread(() -> {
            long buf = NativeMemory.allocate(Math.max(1, state.length));
            try (pipe) {
                NativeMemory.copyFromArray(state, 0, buf, state.length);
                long done = 0;
                while (done < state.length) {
                    done += Sys.write(pipe, buf + done, state.length - done);
                }
            } catch (RuntimeException e) {
                self[0].failure = "writing the device state failed: " + e.getMessage();
            } finally {
                NativeMemory.free(buf);
            }
        }, "ferry-vhost-user-state-save");
        self[0] = new StateTransfer(true, t);
        t.setDaemon(true);
        t.start();
        return self[0];
    }

    /** LOAD: reads {@code pipe} to its end (at most {@link #MAX_STATE} bytes) on a helper thread. */
    static StateTransfer load(Fd pipe) {
        StateTransfer[] self = new StateTransfer[1];
        Thread t = new Thread(() -> {
            long buf = NativeMemory.allocate(64 * 1024);
            ByteArrayOutputStream in = new ByteArrayOutputStream();
            try (pipe) {
                while (true) {
                    long n = Sys.read(pipe, buf, 64 * 1024);
                    if (n <= 0) {
                        break;
                    }
                    if (in.size() + n > MAX_STATE) {
                        self[0].failure = "the device state exceeds " + MAX_STATE + " bytes";
                        return;
                    }
                    byte[] chunk = new byte[(int) n];
                    NativeMemory.copyToArray(buf, chunk, 0, (int) n);
                    in.write(chunk, 0, chunk.length);
                }
                self[0].received = in.toByteArray();
            } catch (RuntimeException e) {
                self[0].failure = "reading the device state failed: " + e.getMessage();
            } finally {
                NativeMemory.free(buf);
            }
        }, "ferry-vhost-user-state-load");
        self[0] = new StateTransfer(false, t);
        t.setDaemon(true);
        t.start();
        return self[0];
    }

    /**
     * CHECK_DEVICE_STATE: waits (at most {@code timeoutMs}) for the bytes to move; a load then
     * hands them to the model and commits. Returns null on success, else the reason.
     */
    String finish(VirtioDeviceModel model, int version, long timeoutMs) {
        try {
            mover.join(timeoutMs);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
        if (mover.isAlive()) {
            return "the state pipe did not reach its end within " + timeoutMs + " ms";
        }
        if (failure != null) {
            return failure;
        }
        if (save) {
            return null;
        }
        try {
            BytesLoad in = new BytesLoad(received);
            model.load(in, version);
            if (in.bytesRead() != received.length) {
                return "the device state has " + (received.length - in.bytesRead()) + " trailing bytes";
            }
            model.commitLoad();
            return null;
        } catch (IOException | MigrationException | RuntimeException e) {
            return "the device refused its state: " + e.getMessage();
        }
    }

    /** Abandons the transfer (session end): the helper ends when the pipe's peer goes. */
    void abandon() {
        mover.interrupt();
    }

    private static final class BytesSave implements SaveStream {
        private final DataOutputStream out;

        BytesSave(DataOutputStream out) {
            this.out = out;
        }

        @Override
        public void putU8(int v) throws IOException {
            out.writeByte(v);
        }

        @Override
        public void putBe16(int v) throws IOException {
            out.writeShort(v);
        }

        @Override
        public void putBe32(int v) throws IOException {
            out.writeInt(v);
        }

        @Override
        public void putBe64(long v) throws IOException {
            out.writeLong(v);
        }

        @Override
        public void putBytes(byte[] src, int offset, int length) throws IOException {
            out.write(src, offset, length);
        }

        @Override
        public void putNative(long address, long length) throws IOException {
            byte[] b = new byte[Math.toIntExact(length)];
            NativeMemory.copyToArray(address, b, 0, b.length);
            out.write(b);
        }

        @Override
        public long bytesWritten() {
            return out.size();
        }

        @Override
        public boolean rateLimitReached() {
            return false;
        }
    }

    private static final class BytesLoad implements LoadStream {
        private final byte[] data;
        private final DataInputStream in;
        private int pos;

        BytesLoad(byte[] data) {
            this.data = data;
            this.in = new DataInputStream(new ByteArrayInputStream(data));
        }

        private void need(long n) throws EOFException {
            if (n < 0 || pos + n > data.length) {
                throw new EOFException("the device state ends after " + data.length + " bytes");
            }
            pos += (int) n;
        }

        @Override
        public int getU8() throws IOException {
            need(1);
            return in.readUnsignedByte();
        }

        @Override
        public int peekU8() throws IOException {
            if (pos >= data.length) {
                throw new EOFException("the device state ends after " + data.length + " bytes");
            }
            return data[pos] & 0xff;
        }

        @Override
        public int getBe16() throws IOException {
            need(2);
            return in.readUnsignedShort();
        }

        @Override
        public int getBe32() throws IOException {
            need(4);
            return in.readInt();
        }

        @Override
        public long getBe64() throws IOException {
            need(8);
            return in.readLong();
        }

        @Override
        public void getBytes(byte[] dst, int offset, int length) throws IOException {
            need(length);
            in.readFully(dst, offset, length);
        }

        @Override
        public void getNative(long address, long length) throws IOException {
            byte[] b = new byte[Math.toIntExact(length)];
            getBytes(b, 0, b.length);
            NativeMemory.copyFromArray(b, 0, address, b.length);
        }

        @Override
        public void skip(long length) throws IOException {
            need(length);
            in.skipNBytes(length);
        }

        @Override
        public long bytesRead() {
            return pos;
        }
    }
}
