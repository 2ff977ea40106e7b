package dev.ferry.migration.analyze;

import dev.ferry.migration.stream.Qevm;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Reads the body of a CONFIGURATION section, QEMU's {@code vmstate_configuration} (the same
 * bytes in QEMU 7.2 and 10; Ferry writes the first two fields only):
 * <pre>
 * be32 len | len bytes machine type
 * [0x05 | u8 len | "configuration/target-page-bits" | be32 1 | be32 bits]
 * [0x05 | u8 len | "configuration/capabilities"     | be32 1 | be32 n | n × (u8 len | name)]
 * [0x05 | u8 len | "configuration/uuid"             | be32 1 | 16 bytes]
 * </pre>
 * No footer follows. The next top-level byte is never 0x05, so a subsection is recognised by it.
 */
final class ConfigurationReader {
    static final int MAX_CAPABILITIES = 64;

    private ConfigurationReader() {
    }

    static MachineConfiguration read(StreamInput in) throws IOException, AnalysisException {
        long at = in.offset();
        long len = in.be32("the configuration's machine type length");
        if (len > Qevm.MAX_CONFIGURATION_LENGTH) {
            throw AnalysisException.malformed(at, "configuration at offset " + at + ": machine type of " + len
                    + " bytes (at most " + Qevm.MAX_CONFIGURATION_LENGTH + ")");
        }
        String machine = dev.ferry.core.migration.StreamText.escape(in.bytes((int) len,
                "the configuration's machine type"), (int) len, 255);
        List<String> caps = List.of();
        int pageBits = -1;
        String uuid = null;
        while (!in.atEnd() && in.peekU8("the byte after the configuration") == Qevm.SUBSECTION) {
            long subAt = in.offset();
            in.u8("a configuration subsection marker");
            String name = in.countedString(1, "a configuration subsection name");
            long version = in.be32("the version of " + name);
            if (version != 1) {
                throw AnalysisException.unsupported(subAt, name + " version " + version + " at offset " + subAt
                        + " (known: 1)");
            }
            switch (name) {
                case "configuration/target-page-bits" -> {
                    long bits = in.be32("the target page bits");
                    if (bits < 10 || bits > 20) {
                        throw AnalysisException.malformed(subAt, "configuration: target page bits " + bits);
                    }
                    pageBits = (int) bits;
                }
                case "configuration/capabilities" -> caps = capabilities(in, subAt);
                case "configuration/uuid" -> uuid = HexFormat.of().formatHex(in.bytes(16, "the VM UUID"));
                default -> throw AnalysisException.malformed(subAt, "unknown configuration subsection " + name
                        + " at offset " + subAt);
            }
        }
        return new MachineConfiguration(machine, caps, pageBits, uuid);
    }

    private static List<String> capabilities(StreamInput in, long at) throws IOException, AnalysisException {
        long n = in.be32("the capability count");
        if (n > MAX_CAPABILITIES) {
            throw AnalysisException.malformed(at, "configuration at offset " + at + " lists " + n + " capabilities");
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(in.countedString(1, "a capability name"));
        }
        return List.copyOf(out);
    }
}
