package dev.ferry.core.sys;

/**
 * A failed system call. Keeps the call's name, the errno and what the call was working on, so
 * messages read like {@code "mmap(length=4294967296, MAP_SHARED): ENOMEM (Cannot allocate memory)"}.
 */
public class NativeCallException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String call;
    private final int errno;

    public NativeCallException(String call, int errno, String detail) {
        super(call + (detail == null || detail.isEmpty() ? "" : "(" + detail + ")") + ": "
                + Errno.name(errno) + " (" + Sys.strerror(errno) + ")");
        this.call = call;
        this.errno = errno;
    }

    /** The system call or ioctl that failed, e.g. {@code "memfd_create"} or {@code "KVM_RUN"}. */
    public String call() {
        return call;
    }

    public int errno() {
        return errno;
    }
}
