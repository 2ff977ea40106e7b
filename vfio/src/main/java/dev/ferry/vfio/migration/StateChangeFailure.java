package dev.ferry.vfio.migration;

/**
 * A SET of MIG_DEVICE_STATE failed; the message says which device, which arc, the errno, and
 * what the recovery did (recovered, reset, or the device is lost). Callers turn it into the
 * exception their caller expects (a migration error, a VM-change-state error).
 */
final class StateChangeFailure extends Exception {
    private static final long serialVersionUID = 1L;

    StateChangeFailure(String message, Throwable cause) {
        super(message, cause);
    }
}
