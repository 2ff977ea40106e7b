package dev.ferry.core.machine;

/** A VM-change-state handler could not make its device follow the run state. */
public class VmStateChangeException extends Exception {
    private static final long serialVersionUID = 1L;

    public VmStateChangeException(String message) {
        super(message);
    }

    public VmStateChangeException(String message, Throwable cause) {
        super(message, cause);
    }
}
