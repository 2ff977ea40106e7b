package dev.ferry.migration.testing;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Writes QEVM v3 streams by hand, for crafted (mostly hostile) input. Deliberately independent of
 * the engine's writer: every number here is the format's literal value, so a test built with it
 * checks the engine against the format, not against itself. Big-endian throughout.
 * <pre>
 *   byte[] s = new StreamBytes().header().configuration("ferry")
 *           .start(1, "ram", 0, 4).memSize(16384).block("pc.ram", 16384).ramEos().footer(1)
 *           .eof().toByteArray();
 * </pre>
 */
public final class StreamBytes {
    public static final int PAGE = 4096;
    /** RAM record flags (QEMU's RAM_SAVE_FLAG_*). */
    public static final long ZERO = 0x02;
    public static final long MEM_SIZE = 0x04;
    public static final long PAGE_FLAG = 0x08;
    public static final long EOS = 0x10;
    public static final long CONTINUE = 0x20;

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    public StreamBytes u8(int v) {
        out.write(v);
        return this;
    }

    public StreamBytes be16(int v) {
        return u8(v >>> 8).u8(v);
    }

    public StreamBytes be32(int v) {
        return be16(v >>> 16).be16(v);
    }

    public StreamBytes be64(long v) {
        return be32((int) (v >>> 32)).be32((int) v);
    }

    public StreamBytes bytes(byte[] b) {
        out.write(b, 0, b.length);
        return this;
    }

    /** A counted string: u8 length, then the bytes (no NUL). */
    public StreamBytes str(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        return u8(b.length).bytes(b);
    }

    // ---- framing

    /** be32 "QEVM", be32 3. */
    public StreamBytes header() {
        return be32(0x5145564d).be32(3);
    }

    /** 0x07, be32 length, machine type. */
    public StreamBytes configuration(String machineType) {
        byte[] b = machineType.getBytes(StandardCharsets.UTF_8);
        return u8(0x07).be32(b.length).bytes(b);
    }

    /** 0x01 SECTION_START header. */
    public StreamBytes start(int sectionId, String idstr, int instanceId, int version) {
        return u8(0x01).be32(sectionId).str(idstr).be32(instanceId).be32(version);
    }

    /** 0x04 SECTION_FULL header. */
    public StreamBytes full(int sectionId, String idstr, int instanceId, int version) {
        return u8(0x04).be32(sectionId).str(idstr).be32(instanceId).be32(version);
    }

    /** 0x02 SECTION_PART header. */
    public StreamBytes part(int sectionId) {
        return u8(0x02).be32(sectionId);
    }

    /** 0x03 SECTION_END header. */
    public StreamBytes end(int sectionId) {
        return u8(0x03).be32(sectionId);
    }

    /** 0x7e, be32 section id. */
    public StreamBytes footer(int sectionId) {
        return u8(0x7e).be32(sectionId);
    }

    /** 0x08, be16 command, be16 length, payload. */
    public StreamBytes command(int cmd, byte[] payload) {
        return u8(0x08).be16(cmd).be16(payload.length).bytes(payload);
    }

    public StreamBytes eof() {
        return u8(0x00);
    }

    /** 0x06, be32 length, JSON. */
    public StreamBytes vmdesc(String json) {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        return u8(0x06).be32(b.length).bytes(b);
    }

    // ---- RAM section data

    /** A MEM_SIZE record: be64 (total | 0x04); the blocks follow with {@link #block}. */
    public StreamBytes memSize(long totalBytes) {
        return be64(totalBytes | MEM_SIZE);
    }

    /** One block of a MEM_SIZE record: counted idstr, be64 length. */
    public StreamBytes block(String idstr, long length) {
        return str(idstr).be64(length);
    }

    /** A ZERO record naming its block. */
    public StreamBytes zeroPage(long offset, String block) {
        return be64(offset | ZERO).str(block).u8(0);
    }

    /** A ZERO record in the previous record's block. */
    public StreamBytes zeroPageContinue(long offset) {
        return be64(offset | ZERO | CONTINUE).u8(0);
    }

    /** A PAGE record naming its block. */
    public StreamBytes page(long offset, String block, byte[] content) {
        checkPage(content);
        return be64(offset | PAGE_FLAG).str(block).bytes(content);
    }

    /** A PAGE record in the previous record's block. */
    public StreamBytes pageContinue(long offset, byte[] content) {
        checkPage(content);
        return be64(offset | PAGE_FLAG | CONTINUE).bytes(content);
    }

    public StreamBytes ramEos() {
        return be64(EOS);
    }

    // ---- the test device (layout in TestDevice)

    /** The fields of {@code d} and, when {@code d.extra() != 0}, its subsection. */
    public StreamBytes testDeviceState(TestDevice d) {
        be32(d.id()).be64(d.counter()).bytes(d.mac()).u8(d.enabled() ? 1 : 0);
        if (d.extra() != 0) {
            u8(0x05).str(TestDevice.EXTRA).be32(1).be16(d.extra());
        }
        return this;
    }

    public int size() {
        return out.size();
    }

    public byte[] toByteArray() {
        return out.toByteArray();
    }

    private static void checkPage(byte[] content) {
        if (content.length != PAGE) {
            throw new IllegalArgumentException("a page is " + PAGE + " bytes, got " + content.length);
        }
    }
}
