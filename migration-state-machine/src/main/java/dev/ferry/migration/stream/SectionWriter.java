package dev.ferry.migration.stream;

import dev.ferry.core.migration.SaveStream;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/** Writes the QEVM framing around section data (layout in {@link Qevm}). */
public final class SectionWriter {
    private final SaveStream out;

    public SectionWriter(SaveStream out) {
        this.out = out;
    }

    public void fileHeader() throws IOException {
        out.putBe32(Qevm.FILE_MAGIC);
        out.putBe32(Qevm.FILE_VERSION);
    }

    public void configuration(String machineType) throws IOException {
        byte[] n = machineType.getBytes(StandardCharsets.UTF_8);
        out.putU8(Qevm.CONFIGURATION);
        out.putBe32(n.length);
        out.putBytes(n);
    }

    /** START or FULL header. */
    public void sectionHeader(int type, int sectionId, String idstr, int instanceId, int version) throws IOException {
        byte[] n = idstr.getBytes(StandardCharsets.UTF_8);
        out.putU8(type);
        out.putBe32(sectionId);
        out.putU8(n.length);
        out.putBytes(n);
        out.putBe32(instanceId);
        out.putBe32(version);
    }

    /** PART or END header. */
    public void sectionHeader(int type, int sectionId) throws IOException {
        out.putU8(type);
        out.putBe32(sectionId);
    }

    public void footer(int sectionId) throws IOException {
        out.putU8(Qevm.SECTION_FOOTER);
        out.putBe32(sectionId);
    }

    public void command(int cmd, byte[] payload) throws IOException {
        out.putU8(Qevm.COMMAND);
        out.putBe16(cmd);
        out.putBe16(payload.length);
        out.putBytes(payload);
    }

    public void eof() throws IOException {
        out.putU8(Qevm.EOF);
    }

    /**
     * The trailing VMDESCRIPTION. QEMU's analyzer finds the JSON as the first '{' after the
     * stream's last NUL byte, so no byte of the length may be '{': pad with spaces until none is.
     */
    public void vmdesc(byte[] json) throws IOException {
        int len = json.length;
        int pad = 0;
        while (hasBrace(len + pad)) {
            pad++;
        }
        out.putU8(Qevm.VMDESCRIPTION);
        out.putBe32(len + pad);
        out.putBytes(json);
        for (int i = 0; i < pad; i++) {
            out.putU8(' ');
        }
    }

    private static boolean hasBrace(int v) {
        for (int i = 0; i < 4; i++) {
            if (((v >>> (i * 8)) & 0xff) == '{') {
                return true;
            }
        }
        return false;
    }
}
