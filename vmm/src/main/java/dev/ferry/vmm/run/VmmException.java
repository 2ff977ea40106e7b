package dev.ferry.vmm.run;

/** A command the VMM refuses, with QMP's error class ({@code GenericError} unless said otherwise). */
public class VmmException extends Exception {
    private static final long serialVersionUID = 1L;
    private final String errorClass;

    public VmmException(String errorClass, String message) {
        super(message);
        this.errorClass = errorClass;
    }

    public static VmmException generic(String message) {
        return new VmmException("GenericError", message);
    }

    public String errorClass() {
        return errorClass;
    }
}
