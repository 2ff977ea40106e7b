package dev.ferry.vfio.emulated;

import dev.ferry.vfio.fsm.MigCapabilities;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * How an emulated VF is built: its migration capabilities, the size and behaviour of its internal
 * state, DMA logging, and injected faults. Written as the comma list that {@code --vf} and
 * {@code ferry vfio check --device emulated:FLAGS} take:
 * <pre>
 *   stop-copy | p2p | pre-copy      capabilities (none named: all three; stop-copy is implied)
 *   no-migration                    the device has no migration support (GET MIGRATION: ENOTTY)
 *   state=SIZE                      internal state memory (default 4M; up to 1G)
 *   initial=SIZE                    how much of it pre-copy offers as initial data (default: all)
 *   dirty-rate=SIZE                 bytes of internal state changed per second while running (default 1M)
 *   no-dma-log                      the device cannot track its DMA writes
 *   seed=N                          seed of the device's deterministic behaviour
 *   pps=N                           packets per second the NIC's wire delivers while RX runs
 *                                   (default 4000; 0: only when a test calls advance)
 *   fault=KIND[:STATE[:MILLIS]]     an injected fault (repeatable), see {@link FaultKind}
 * </pre>
 */
public record EmulatedVfSpec(MigCapabilities capabilities, boolean migration, long stateBytes, long initialBytes,
                             long dirtyRate, boolean dmaLogging, long seed, List<Fault> faults, long packetRate) {
    public static final long MAX_STATE = 1L << 30;
    public static final long DEFAULT_STATE = 4L << 20;
    public static final long DEFAULT_DIRTY_RATE = 1L << 20;
    public static final long DEFAULT_PACKET_RATE = 4000;
    /** Far above what the data plane can deliver; a bound so pacing arithmetic cannot overflow. */
    public static final long MAX_PACKET_RATE = 10_000_000;

    public EmulatedVfSpec {
        if (!capabilities.hasAll(MigCapabilities.STOP_COPY)) {
            throw new IllegalArgumentException("a migratable device must offer STOP_COPY");
        }
        if (stateBytes < 0 || stateBytes > MAX_STATE) {
            throw new IllegalArgumentException("state=" + stateBytes + " is outside 0.." + MAX_STATE);
        }
        if (initialBytes < 0 || initialBytes > stateBytes) {
            throw new IllegalArgumentException("initial=" + initialBytes + " must be within state=" + stateBytes);
        }
        if (dirtyRate < 0) {
            throw new IllegalArgumentException("dirty-rate must not be negative");
        }
        if (packetRate < 0 || packetRate > MAX_PACKET_RATE) {
            throw new IllegalArgumentException("pps=" + packetRate + " is outside 0.." + MAX_PACKET_RATE);
        }
        faults = List.copyOf(faults);
    }

    /** A spec with the default packet rate (the form before {@code pps} existed). */
    public EmulatedVfSpec(MigCapabilities capabilities, boolean migration, long stateBytes, long initialBytes,
                          long dirtyRate, boolean dmaLogging, long seed, List<Fault> faults) {
        this(capabilities, migration, stateBytes, initialBytes, dirtyRate, dmaLogging, seed, faults,
                DEFAULT_PACKET_RATE);
    }

    public static EmulatedVfSpec defaults() {
        return parse("");
    }

    public static EmulatedVfSpec of(MigCapabilities caps) {
        return defaults().withCapabilities(caps);
    }

    public EmulatedVfSpec withCapabilities(MigCapabilities caps) {
        return new EmulatedVfSpec(caps, migration, stateBytes, initialBytes, dirtyRate, dmaLogging, seed, faults, packetRate);
    }

    public EmulatedVfSpec withState(long state, long initial) {
        return new EmulatedVfSpec(capabilities, migration, state, initial, dirtyRate, dmaLogging, seed, faults, packetRate);
    }

    public EmulatedVfSpec withDirtyRate(long rate) {
        return new EmulatedVfSpec(capabilities, migration, stateBytes, initialBytes, rate, dmaLogging, seed, faults, packetRate);
    }

    public EmulatedVfSpec withSeed(long s) {
        return new EmulatedVfSpec(capabilities, migration, stateBytes, initialBytes, dirtyRate, dmaLogging, s, faults, packetRate);
    }

    public EmulatedVfSpec withFault(Fault f) {
        List<Fault> all = new ArrayList<>(faults);
        all.add(f);
        return new EmulatedVfSpec(capabilities, migration, stateBytes, initialBytes, dirtyRate, dmaLogging, seed, all, packetRate);
    }

    public EmulatedVfSpec withoutFaults() {
        return new EmulatedVfSpec(capabilities, migration, stateBytes, initialBytes, dirtyRate, dmaLogging, seed, List.of(), packetRate);
    }

    public EmulatedVfSpec withPacketRate(long pps) {
        return new EmulatedVfSpec(capabilities, migration, stateBytes, initialBytes, dirtyRate, dmaLogging, seed, faults,
                pps);
    }

    public boolean has(FaultKind kind) {
        return faults.stream().anyMatch(f -> f.kind() == kind);
    }

    /** Parses a comma list of flags; an empty list is a healthy device with all three capabilities. */
    public static EmulatedVfSpec parse(String flags) {
        long caps = 0;
        boolean migration = true;
        long state = DEFAULT_STATE;
        Long initial = null;
        long rate = DEFAULT_DIRTY_RATE;
        boolean dmaLog = true;
        long seed = 1;
        long pps = DEFAULT_PACKET_RATE;
        List<Fault> faults = new ArrayList<>();
        for (String raw : flags.split(",")) {
            String f = raw.trim().toLowerCase(Locale.ROOT);
            if (f.isEmpty()) {
                continue;
            }
            int eq = f.indexOf('=');
            String key = eq < 0 ? f : f.substring(0, eq);
            String value = eq < 0 ? null : raw.trim().substring(eq + 1);
            switch (key) {
                case "stop-copy" -> caps |= MigCapabilities.STOP_COPY;
                case "p2p" -> caps |= MigCapabilities.P2P;
                case "pre-copy" -> caps |= MigCapabilities.PRE_COPY;
                case "no-migration" -> migration = false;
                case "no-dma-log" -> dmaLog = false;
                case "state" -> state = size(key, value);
                case "initial" -> initial = size(key, value);
                case "dirty-rate" -> rate = size(key, value);
                case "seed" -> seed = number(key, value);
                case "pps" -> pps = number(key, value);
                case "fault" -> faults.add(Fault.parse(need(key, value)));
                default -> throw new IllegalArgumentException("unknown VF flag '" + raw.trim()
                        + "' (flags: stop-copy, p2p, pre-copy, no-migration, no-dma-log, state=SIZE, initial=SIZE,"
                        + " dirty-rate=SIZE, seed=N, pps=N, fault=KIND[:STATE[:MILLIS]])");
            }
        }
        caps = caps == 0 ? MigCapabilities.ALL.flags() : caps | MigCapabilities.STOP_COPY;
        return new EmulatedVfSpec(new MigCapabilities(caps), migration, state, initial == null ? state : initial, rate,
                dmaLog, seed, faults, pps);
    }

    private static long number(String key, String value) {
        try {
            return Long.parseLong(need(key, value).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("VF flag '" + key + "': '" + value + "' is not a number");
        }
    }

    private static String need(String key, String value) {
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("VF flag '" + key + "' needs a value");
        }
        return value;
    }

    static long size(String key, String value) {
        String v = need(key, value).trim().toUpperCase(Locale.ROOT);
        long mult = 1;
        char last = v.charAt(v.length() - 1);
        switch (last) {
            case 'K' -> mult = 1L << 10;
            case 'M' -> mult = 1L << 20;
            case 'G' -> mult = 1L << 30;
            default -> { }
        }
        if (mult != 1) {
            v = v.substring(0, v.length() - 1);
        }
        try {
            return Math.multiplyExact(Long.parseLong(v), mult);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException("VF flag '" + key + "': '" + value + "' is not a size (e.g. 256M)");
        }
    }

    /** The flags back in {@link #parse} syntax: {@code parse(toFlags())} equals this spec. Defaults are left out. */
    public String toFlags() {
        List<String> out = new ArrayList<>();
        if (!migration) {
            out.add("no-migration");
        }
        out.add("stop-copy");
        if (capabilities.hasAll(MigCapabilities.P2P)) {
            out.add("p2p");
        }
        if (capabilities.hasAll(MigCapabilities.PRE_COPY)) {
            out.add("pre-copy");
        }
        if (!dmaLogging) {
            out.add("no-dma-log");
        }
        if (stateBytes != DEFAULT_STATE) {
            out.add("state=" + stateBytes);
        }
        if (initialBytes != stateBytes) {
            out.add("initial=" + initialBytes);
        }
        if (dirtyRate != DEFAULT_DIRTY_RATE) {
            out.add("dirty-rate=" + dirtyRate);
        }
        if (seed != 1) {
            out.add("seed=" + seed);
        }
        if (packetRate != DEFAULT_PACKET_RATE) {
            out.add("pps=" + packetRate);
        }
        faults.forEach(f -> out.add("fault=" + f));
        return String.join(",", out);
    }
}
