package dev.ferry.core.device;

/** A {@link DeviceEventLoop} is closed; thrown by submissions, so registrations' close() can tell it apart. */
final class LoopClosedException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    LoopClosedException(String name, String what) {
        super("device event loop " + name + ": " + what);
    }
}
