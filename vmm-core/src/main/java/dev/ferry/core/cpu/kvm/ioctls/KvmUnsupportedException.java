package dev.ferry.core.cpu.kvm.ioctls;

/**
 * The host's KVM lacks something Ferry needs (the right API version, a capability). Not an errno:
 * failed ioctls are {@link dev.ferry.core.sys.NativeCallException}s that name the ioctl.
 */
public class KvmUnsupportedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public KvmUnsupportedException(String message) {
        super(message);
    }
}
