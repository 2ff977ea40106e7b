package dev.ferry.core.memory;

/** An address in this process's address space (what vhost-user calls a user address). */
public record HostAddress(long raw) {
    @Override
    public String toString() {
        return "hva 0x" + Long.toHexString(raw);
    }
}
