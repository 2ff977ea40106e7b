package dev.ferry.core.device;

/** A device entry of a VM config that cannot be used; the message names the field and the problem. */
public class DeviceConfigException extends Exception {
    private static final long serialVersionUID = 1L;

    public DeviceConfigException(String message) {
        super(message);
    }

    public DeviceConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
