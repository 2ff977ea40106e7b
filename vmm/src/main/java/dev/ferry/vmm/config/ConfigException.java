package dev.ferry.vmm.config;

/** A VM config that cannot be used; the message names the file, the field and the problem. */
public class ConfigException extends Exception {
    private static final long serialVersionUID = 1L;

    public ConfigException(String message) {
        super(message);
    }
}
