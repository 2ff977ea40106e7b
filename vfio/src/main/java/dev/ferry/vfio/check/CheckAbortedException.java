package dev.ferry.vfio.check;

/**
 * The check cannot go on: a device call hung, or no instance could be opened or told its
 * migration flags. The finding that stopped it is already recorded; the message says where.
 */
final class CheckAbortedException extends Exception {
    private static final long serialVersionUID = 1L;

    CheckAbortedException(String message) {
        super(message);
    }
}
