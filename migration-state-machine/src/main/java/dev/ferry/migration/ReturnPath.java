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
