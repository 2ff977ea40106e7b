package dev.ferry.vmm.config;

/** Parses sizes the way QEMU users write them: {@code 1G}, {@code 256M}, {@code 50M}, {@code 4096}. */
public final class Sizes {
    private Sizes() {
    }

    public static long parse(String s) {
        String t = s.trim();
        if (t.isEmpty()) {
            throw new IllegalArgumentException("empty size");
        }
        char unit = Character.toUpperCase(t.charAt(t.length() - 1));
        long mult = switch (unit) {
            case 'K' -> 1L << 10;
            case 'M' -> 1L << 20;
            case 'G' -> 1L << 30;
            case 'T' -> 1L << 40;
            default -> 1;
        };
        String digits = mult == 1 ? t : t.substring(0, t.length() - 1);
        try {
            long v = Long.parseLong(digits);
            if (v < 0) {
                throw new IllegalArgumentException("negative size '" + s + "'");
            }
            return Math.multiplyExact(v, mult);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException("not a size: '" + s + "' (use e.g. 512M, 1G, 4096)");
        }
    }
}
