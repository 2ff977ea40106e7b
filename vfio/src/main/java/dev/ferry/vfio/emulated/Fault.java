package dev.ferry.vfio.emulated;

import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** One injected fault: a kind, the state whose entry it hits (arc faults), and a parameter. */
public record Fault(FaultKind kind, VfioDeviceState state, long millis) {
    /** Parses the value of {@code fault=...}: {@code KIND[:STATE[:MILLIS]]}. */
    public static Fault parse(String text) {
        String[] parts = text.split(":");
        FaultKind kind = FaultKind.byFlag(parts[0]);
        if (kind == null) {
            throw new IllegalArgumentException("unknown fault '" + parts[0] + "' (known: "
                    + Arrays.stream(FaultKind.values()).map(FaultKind::flag).collect(Collectors.joining(", ")) + ")");
        }
        VfioDeviceState state = null;
        long millis = 0;
        if (kind.needsState()) {
            if (parts.length < 2) {
                throw new IllegalArgumentException("fault '" + kind.flag() + "' needs a state, e.g. "
                        + kind.flag() + ":STOP_COPY");
            }
            try {
                state = VfioDeviceState.valueOf(parts[1].toUpperCase(Locale.ROOT).replace('-', '_'));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("fault '" + text + "': unknown device state '" + parts[1] + "'");
            }
            if (state == VfioDeviceState.ERROR) {
                throw new IllegalArgumentException("fault '" + text + "': ERROR cannot be entered by a SET");
            }
            if (kind == FaultKind.SLOW_SET) {
                millis = parts.length > 2 ? Long.parseLong(parts[2]) : 200;
            }
            if (parts.length > (kind == FaultKind.SLOW_SET ? 3 : 2)) {
                throw new IllegalArgumentException("fault '" + text + "': too many ':' parts");
            }
        } else if (parts.length > 1) {
            throw new IllegalArgumentException("fault '" + kind.flag() + "' takes no state");
        }
        return new Fault(kind, state, millis);
    }

    public boolean hitsEntryOf(VfioDeviceState s) {
        return state == s;
    }

    @Override
    public String toString() {
        if (state == null) {
            return kind.flag();
        }
        return kind.flag() + ":" + state + (kind == FaultKind.SLOW_SET ? ":" + millis : "");
    }
}
