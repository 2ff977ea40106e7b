package dev.ferry.vfio.device;

import dev.ferry.core.sys.Errno;

import java.io.IOException;

/**
 * A VFIO call that failed, with the errno the kernel (or an emulated device keeping the kernel's
 * contract) returned and the operation that failed, e.g. {@code "SET MIG_DEVICE_STATE
 * RUNNING->PRE_COPY"}.
 */
public class VfioException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String operation;
    private final int errno;

    public VfioException(String operation, int errno, String detail) {
        super(operation + ": " + Errno.name(errno) + (detail == null || detail.isEmpty() ? "" : " (" + detail + ")"));
        this.operation = operation;
        this.errno = errno;
    }

    public VfioException(String operation, int errno, String detail, Throwable cause) {
        this(operation, errno, detail);
        initCause(cause);
    }

    public String operation() {
        return operation;
    }

    public int errno() {
        return errno;
    }
}
