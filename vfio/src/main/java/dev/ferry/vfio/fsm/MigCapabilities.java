package dev.ferry.vfio.fsm;

import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.ArrayList;
import java.util.List;

/**
 * The migration flags a device reports through {@code VFIO_DEVICE_FEATURE_MIGRATION} (GET,
 * {@code u64 flags}). STOP_COPY is mandatory for a migratable device; P2P and PRE_COPY add the
 * optional states RUNNING_P2P, PRE_COPY and PRE_COPY_P2P.
 *
 * <p>The value keeps every bit it was given, including ones this class does not name, so a
 * newer kernel's flags survive a round trip.
 *
 * @param flags the raw {@code vfio_device_feature_migration.flags}
 */
public record MigCapabilities(long flags) {
    /** {@code VFIO_MIGRATION_STOP_COPY}: STOP, RUNNING, STOP_COPY and RESUMING exist. */
    public static final long STOP_COPY = 1L << 0;
    /** {@code VFIO_MIGRATION_P2P}: RUNNING_P2P exists. */
    public static final long P2P = 1L << 1;
    /** {@code VFIO_MIGRATION_PRE_COPY}: PRE_COPY exists (and PRE_COPY_P2P together with P2P). */
    public static final long PRE_COPY = 1L << 2;

    /** A device that can only stop and copy. */
    public static final MigCapabilities STOP_COPY_ONLY = new MigCapabilities(STOP_COPY);
    /** STOP_COPY and P2P. */
    public static final MigCapabilities STOP_COPY_P2P = new MigCapabilities(STOP_COPY | P2P);
    /** STOP_COPY and PRE_COPY. */
    public static final MigCapabilities STOP_COPY_PRE_COPY = new MigCapabilities(STOP_COPY | PRE_COPY);
    /** All three flags: every state of protocol v2 exists. */
    public static final MigCapabilities ALL = new MigCapabilities(STOP_COPY | P2P | PRE_COPY);

    /** True if every bit of {@code mask} is set. */
    public boolean hasAll(long mask) {
        return (flags & mask) == mask;
    }

    /** True if the device can migrate at all, which the kernel's v2 protocol ties to STOP_COPY. */
    public boolean migratable() {
        return hasAll(STOP_COPY);
    }

    @Override
    public String toString() {
        List<String> names = new ArrayList<>();
        if (hasAll(STOP_COPY)) {
            names.add("STOP_COPY");
        }
        if (hasAll(P2P)) {
            names.add("P2P");
        }
        if (hasAll(PRE_COPY)) {
            names.add("PRE_COPY");
        }
        long unknown = flags & ~(STOP_COPY | P2P | PRE_COPY);
        if (unknown != 0) {
            names.add("0x" + Long.toHexString(unknown));
        }
        return names.isEmpty() ? "{}" : "{" + String.join("|", names) + "}";
    }
}
