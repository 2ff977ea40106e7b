package dev.ferry.core.migration;

/**
 * A migration failed for a reason a user should read: what failed, where, and what happened to
 * the VM. The engine puts the message into {@code query-migrate}'s {@code error-desc}.
 */
public class MigrationException extends Exception {
    private static final long serialVersionUID = 1L;

    public MigrationException(String message) {
        super(message);
    }

    public MigrationException(String message, Throwable cause) {
        super(message, cause);
    }
}
