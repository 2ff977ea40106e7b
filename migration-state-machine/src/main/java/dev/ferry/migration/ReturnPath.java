package dev.ferry.migration;

/**
 * Messages on the return path, destination to source ({@code migration/migration.c}):
 * <pre>be16 type | be16 len | payload</pre>
 * SHUT carries be32 0 (loaded and running) or 1 (failed); the destination sends it last.
 *
 * <p>Ferry's destination also sends an unsolicited PONG carrying {@link #HEARTBEAT} every
 * {@link #HEARTBEAT_INTERVAL_MS} while the return path is open: a source that stops hearing them
 * knows the destination or the network is gone within a bounded time, instead of waiting on a dead
 * TCP peer. QEMU's source reads a PONG it did not ask for as a trace line, so the stream stays
 * QEMU's.
 *
 * <p>Right before a SHUT(0) it also reports where its own part of the guest's pause went, after it
 * read the stream's end: three more PONGs, each {@code be32 tag << 24 | microseconds} (capped at
 * 2^24 − 1, 16.7 s) with the tags {@code 'L'} (the handlers' load cleanup: device states
 * committed, channels joined), {@code 'V'} (verification before the start: a digest, a hook) and
 * {@code 'S'} (starting the VM). Like the heartbeat, a QEMU source reads them as trace lines; a
 * Ferry source splits the destination's share of the pause with them ({@link DowntimeBreakdown}).
 * The source's own PING value ({@code "FRRY"}) and the heartbeat's ({@code "BEAT"}) have other
 * first bytes.
 */
final class ReturnPath {
    static final int MSG_SHUT = 1;
    static final int MSG_PONG = 2;
    static final int MSG_REQ_PAGES_ID = 3;
    static final int MSG_REQ_PAGES = 4;
    static final int MSG_RECV_BITMAP = 5;
    static final int MSG_RESUME_ACK = 6;
    static final int MSG_SWITCHOVER_ACK = 7;
    static final int MAX_PAYLOAD = 512;
    /** The PONG value of a heartbeat ("BEAT"); the source never PINGs with it. */
    static final int HEARTBEAT = 0x42454154;
    static final long HEARTBEAT_INTERVAL_MS = 500;
    static final int TAG_LOAD = 'L';
    static final int TAG_VERIFY = 'V';
    static final int TAG_START = 'S';
    /** The most microseconds a timing PONG carries. */
    static final long TIMING_MAX_MICROS = (1 << 24) - 1;

    /**
     * The destination's phases after the stream's end, in nanoseconds on its own clock.
     *
     * @param loadNanos   the handlers' load cleanup
     * @param verifyNanos the verification before the start (digest, hook)
     * @param startNanos  starting the VM
     */
    record DestinationTimings(long loadNanos, long verifyNanos, long startNanos) {
        static final DestinationTimings NONE = new DestinationTimings(0, 0, 0);

        long totalNanos() {
            return loadNanos + verifyNanos + startNanos;
        }
    }

    /** The PONG value that carries {@code nanos} under {@code tag}. */
    static int timing(int tag, long nanos) {
        long us = Math.min(TIMING_MAX_MICROS, Math.max(0, nanos / 1000));
        return tag << 24 | (int) us;
    }

    /** The tag of a timing PONG, or 0 when {@code value} is none. */
    static int timingTag(int value) {
        int tag = value >>> 24;
        return tag == TAG_LOAD || tag == TAG_VERIFY || tag == TAG_START ? tag : 0;
    }

    private ReturnPath() {
    }

    /** One heartbeat: false when the return path is closed. */
    @FunctionalInterface
    interface Beat {
        boolean send() throws java.io.IOException;
    }

    /**
     * Calls {@code beat} every {@link #HEARTBEAT_INTERVAL_MS} from a daemon thread until it returns
     * false or fails (the return path closed or broke).
     */
    static void startHeartbeat(Beat beat) {
        Thread t = new Thread(() -> {
            try {
                while (beat.send()) {
                    Thread.sleep(HEARTBEAT_INTERVAL_MS);
                }
            } catch (java.io.IOException | RuntimeException e) {
                org.slf4j.LoggerFactory.getLogger(ReturnPath.class).debug("return-path heartbeat stopped: {}", e.toString());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "ferry-return-path-heartbeat");
        t.setDaemon(true);
        t.start();
    }
}
