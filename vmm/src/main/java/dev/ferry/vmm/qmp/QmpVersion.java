package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Objects;

/**
 * What the greeting and {@code query-version} report: a QEMU-style version triple and a free-form
 * package string ({@code "package"}, e.g. {@code "ferry 0.1.0"}). Tools compare the triple to
 * decide which QMP features to expect, so a Ferry VMM reports the QEMU version whose QMP it mirrors.
 */
public record QmpVersion(int major, int minor, int micro, String packageString) {
    public QmpVersion {
        Objects.requireNonNull(packageString, "packageString");
        if (major < 0 || minor < 0 || micro < 0) {
            throw new IllegalArgumentException("version numbers must not be negative: "
                    + major + "." + minor + "." + micro);
        }
    }

    /** {@code {"qemu": {"micro": m, "minor": n, "major": M}, "package": "..."}}, QEMU's member order. */
    public ObjectNode toJson() {
        ObjectNode version = QmpWire.NODES.objectNode();
        version.putObject("qemu").put("micro", micro).put("minor", minor).put("major", major);
        version.put("package", packageString);
        return version;
    }

    /** Reads the {@link #toJson()} shape, as found in a greeting's {@code "version"}. */
    public static QmpVersion fromJson(JsonNode version) {
        JsonNode qemu = version.path("qemu");
        if (!qemu.path("major").canConvertToInt() || !qemu.path("minor").canConvertToInt()
                || !qemu.path("micro").canConvertToInt()) {
            throw new IllegalArgumentException("not a QMP version object: " + version);
        }
        return new QmpVersion(qemu.get("major").intValue(), qemu.get("minor").intValue(),
                qemu.get("micro").intValue(), version.path("package").asText(""));
    }

    @Override
    public String toString() {
        return major + "." + minor + "." + micro + (packageString.isEmpty() ? "" : " (" + packageString + ")");
    }
}
