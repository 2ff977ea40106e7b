package dev.ferry.core.migration;

/** A reason the VM cannot migrate right now, shown to the user as is (e.g. "vfio0: device lacks STOP_COPY"). */
public record MigrationBlocker(String reason) {
}
