package dev.ferry.vhostuser.proto;

import java.io.IOException;

/**
 * The vhost-user peer broke the protocol, hung up, or did not answer in time. The message names
 * the peer and the request, so that a failed migration says which back-end failed and how.
 */
public class VhostUserException extends IOException {
    public VhostUserException(String message) {
        super(message);
    }

    public VhostUserException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The peer closed the connection (or it broke): reconnecting may help, retrying the request does not. */
    public static final class Disconnected extends VhostUserException {
        public Disconnected(String message) {
            super(message);
        }

        public Disconnected(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** The peer did not answer within the reply timeout. */
    public static final class Timeout extends VhostUserException {
        public Timeout(String message) {
            super(message);
        }
    }
}
