package dev.ferry.vmm.qmp;

import java.util.Objects;

/**
 * A QMP error reply, {@code {"error": {"class": C, "desc": D}}}: thrown by a {@link QmpHandler} to
 * refuse a command, and by {@link QmpClient#execute} when the server refused one.
 *
 * <p>The class is one of QEMU's {@code QapiErrorClass} names; almost every error is
 * {@value #GENERIC_ERROR} and clients are told not to parse the description, so the description
 * is written for a human: what failed and what to do about it.
 *
 * <p>Unchecked, so that callers which treat every failure alike need not list it; methods that
 * throw it still declare it.
 */
public final class QmpError extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public static final String GENERIC_ERROR = "GenericError";
    public static final String COMMAND_NOT_FOUND = "CommandNotFound";
    public static final String DEVICE_NOT_ACTIVE = "DeviceNotActive";
    public static final String DEVICE_NOT_FOUND = "DeviceNotFound";
    public static final String KVM_MISSING_CAP = "KVMMissingCap";

    private final String errorClass;
    private final String desc;

    public QmpError(String errorClass, String desc) {
        super(Objects.requireNonNull(errorClass, "errorClass") + ": " + Objects.requireNonNull(desc, "desc"));
        this.errorClass = errorClass;
        this.desc = desc;
    }

    /** {@value #GENERIC_ERROR}, the class of nearly every QMP error. */
    public static QmpError generic(String desc) {
        return new QmpError(GENERIC_ERROR, desc);
    }

    /** {@value #GENERIC_ERROR} with a {@link String#format} description. */
    public static QmpError generic(String format, Object... args) {
        return new QmpError(GENERIC_ERROR, String.format(format, args));
    }

    public static QmpError commandNotFound(String desc) {
        return new QmpError(COMMAND_NOT_FOUND, desc);
    }

    public static QmpError deviceNotActive(String desc) {
        return new QmpError(DEVICE_NOT_ACTIVE, desc);
    }

    public static QmpError deviceNotFound(String desc) {
        return new QmpError(DEVICE_NOT_FOUND, desc);
    }

    public static QmpError kvmMissingCap(String desc) {
        return new QmpError(KVM_MISSING_CAP, desc);
    }

    /** The {@code "class"} member, e.g. {@value #GENERIC_ERROR}. */
    public String errorClass() {
        return errorClass;
    }

    /** The {@code "desc"} member. */
    public String desc() {
        return desc;
    }
}
