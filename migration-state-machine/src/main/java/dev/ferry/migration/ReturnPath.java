package dev.ferry.migration;

/**
 * Messages on the return path, destination to source ({@code migration/migration.c}):
 * <pre>be16 type | be16 len | payload</pre>
 * SHUT carries be32 0 (loaded and running) or 1 (failed); the destination sends it last.
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

    private ReturnPath() {
    }
}
