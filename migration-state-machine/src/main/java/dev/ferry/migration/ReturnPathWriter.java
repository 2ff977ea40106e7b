package dev.ferry.migration;

import dev.ferry.core.migration.SaveEntry;
import dev.ferry.migration.stream.BandwidthLimiter;
import dev.ferry.migration.stream.ChannelSaveStream;
import dev.ferry.migration.transport.MigrationConnection;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.List;

/**
 * The destination's writer of the return path, the counterpart of the source's
 * {@link ReturnPathReader}: it opens when the stream asks for it (OPEN_RETURN_PATH) and then
 * carries the heartbeat, the PONG for each PING, the switchover-ack once every device that asked
 * for one approved, and last the SHUT with the verdict, after which it is closed for good.
 *
 * <p>Threads: the incoming thread opens it, answers PINGs and writes SHUT; the heartbeat thread
 * writes a PONG every {@link ReturnPath#HEARTBEAT_INTERVAL_MS}; a device may approve the
 * switchover from its own thread. Every write happens under one lock, so messages never
 * interleave; once SHUT is written the stream is null and the heartbeat thread ends.
 */
final class ReturnPathWriter {
    /** Logs under the engine's name, as before the engine was split by role. */
    private static final Logger LOG = LoggerFactory.getLogger(DestinationMigration.class);
    private final MigrationCapabilities caps;
    private final Object lock = new Object();
    private ChannelSaveStream out;
    private int ackPending;
    private boolean ackSent;

    ReturnPathWriter(MigrationCapabilities caps) {
        this.caps = caps;
    }

    /** Counts the devices whose approval the switchover-ack waits for (before their load setup). */
    void expectApprovals(List<SaveEntry> entries) {
        synchronized (lock) {
            for (SaveEntry e : entries) {
                if (e instanceof SaveEntry.Live live && caps.switchoverAck() && live.handler().switchoverAckNeeded()) {
                    ackPending++;
                }
            }
        }
    }

    /** One device approved the switchover; the last approval sends the ack (now, or when the path opens). */
    void approveSwitchover() {
        synchronized (lock) {
            if (ackPending > 0) {
                ackPending--;
            }
            if (ackPending == 0) {
                sendSwitchoverAck();
            }
        }
    }

    /** OPEN_RETURN_PATH: opens the reverse direction of {@code connection} and starts the heartbeat. */
    void open(MigrationConnection connection) {
        synchronized (lock) {
            out = new ChannelSaveStream(connection, new BandwidthLimiter(0, System::nanoTime));
            if (caps.switchoverAck() && ackPending == 0) {
                sendSwitchoverAck();
            }
        }
        ReturnPath.startHeartbeat(this::sendHeartbeat);
    }

    /** Whether the source opened the return path and the verdict is not sent yet. */
    boolean isOpen() {
        synchronized (lock) {
            return out != null;
        }
    }

    /** Answers a PING with its value (nothing when the return path is not open). */
    void pong(int value) throws IOException {
        synchronized (lock) {
            if (out != null) {
                out.putBe16(ReturnPath.MSG_PONG);
                out.putBe16(4);
                out.putBe32(value);
                out.flush();
            }
        }
    }

    /**
     * Sends SHUT with the verdict (0: loaded and running, 1: failed) and closes the return path;
     * the heartbeat stops. Nothing when it was never opened. With {@code ok}, {@code timings}
     * (when not null) go first as timing PONGs ({@link ReturnPath}).
     */
    void shut(boolean ok, ReturnPath.DestinationTimings timings) {
        synchronized (lock) {
            if (out != null) {
                try {
                    if (ok && timings != null) {
                        timing(ReturnPath.TAG_LOAD, timings.loadNanos());
                        timing(ReturnPath.TAG_VERIFY, timings.verifyNanos());
                        timing(ReturnPath.TAG_START, timings.startNanos());
                    }
                    out.putBe16(ReturnPath.MSG_SHUT);
                    out.putBe16(4);
                    out.putBe32(ok ? 0 : 1);
                    // Flush, not drain: the source closes as soon as it reads SHUT, which would
                    // race a drain's check of the channel. Closing below writes what is flushed.
                    out.flush();
                } catch (IOException e) {
                    LOG.warn("sending SHUT on the return path failed: {}", e.toString());
                }
                out.close();
                out = null; // the heartbeat stops
            }
        }
    }

    /** Under the lock: one timing PONG. */
    private void timing(int tag, long nanos) throws IOException {
        out.putBe16(ReturnPath.MSG_PONG);
        out.putBe16(4);
        out.putBe32(ReturnPath.timing(tag, nanos));
    }

    /** One heartbeat on the return path; false once it is closed (the heartbeat thread then ends). */
    private boolean sendHeartbeat() throws IOException {
        synchronized (lock) {
            if (out == null) {
                return false;
            }
            out.putBe16(ReturnPath.MSG_PONG);
            out.putBe16(4);
            out.putBe32(ReturnPath.HEARTBEAT);
            out.flush();
            return true;
        }
    }

    /** Under the lock: the ack, once, when the return path is open. */
    private void sendSwitchoverAck() {
        if (ackSent || out == null) {
            return;
        }
        ackSent = true;
        try {
            out.putBe16(ReturnPath.MSG_SWITCHOVER_ACK);
            out.putBe16(0);
            out.flush();
        } catch (IOException e) {
            LOG.warn("sending switchover-ack failed: {}", e.toString());
        }
    }
}
