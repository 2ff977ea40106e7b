package dev.ferry.core.memory;

/** A guest-physical address. Distinct from {@link HostAddress} and {@link Iova} so they cannot be mixed up. */
public record Gpa(long raw) implements Comparable<Gpa> {
    public static Gpa of(long raw) {
        return new Gpa(raw);
    }

    public Gpa plus(long bytes) {
        return new Gpa(raw + bytes);
    }

    @Override
    public int compareTo(Gpa o) {
        return Long.compareUnsigned(raw, o.raw);
    }

    @Override
    public String toString() {
        return "gpa 0x" + Long.toHexString(raw);
    }
}
