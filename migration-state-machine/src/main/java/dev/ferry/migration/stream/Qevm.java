package dev.ferry.migration.stream;

/**
 * The QEVM v3 stream format QEMU writes and reads ({@code migration/savevm.c}); all integers
 * big-endian.
 * <pre>
 * be32 magic "QEVM" | be32 version 3
 * [0x07 CONFIGURATION | be32 len | machine type]
 * sections:
 *   0x01 START | 0x04 FULL : be32 section_id | u8 len | idstr | be32 instance_id | be32 version_id | data
 *   0x02 PART  | 0x03 END  : be32 section_id | data
 *   every section is followed by 0x7e FOOTER | be32 section_id
 *   0x08 COMMAND : be16 cmd | be16 len | payload
 * 0x00 EOF
 * 0x06 VMDESCRIPTION | be32 len | JSON describing the device sections
 * </pre>
 */
public final class Qevm {
    public static final int FILE_MAGIC = 0x5145564d;
    public static final int FILE_VERSION = 3;

    public static final int EOF = 0x00;
    public static final int SECTION_START = 0x01;
    public static final int SECTION_PART = 0x02;
    public static final int SECTION_END = 0x03;
    public static final int SECTION_FULL = 0x04;
    public static final int SUBSECTION = 0x05;
    public static final int VMDESCRIPTION = 0x06;
    public static final int CONFIGURATION = 0x07;
    public static final int COMMAND = 0x08;
    public static final int SECTION_FOOTER = 0x7e;

    /** MIG_CMD_* values carried in COMMAND sections. */
    public static final int CMD_OPEN_RETURN_PATH = 1;
    public static final int CMD_PING = 2;
    /** QEMU 10 sends it before switchover; it carries nothing Ferry needs. */
    public static final int CMD_SWITCHOVER_START = 11;

    /** Limits applied to hostile input. */
    public static final int MAX_CONFIGURATION_LENGTH = 256;
    public static final int MAX_VMDESC_LENGTH = 16 << 20;

    private Qevm() {
    }

    public static String sectionTypeName(int type) {
        return switch (type) {
            case EOF -> "EOF";
            case SECTION_START -> "SECTION_START";
            case SECTION_PART -> "SECTION_PART";
            case SECTION_END -> "SECTION_END";
            case SECTION_FULL -> "SECTION_FULL";
            case SUBSECTION -> "SUBSECTION";
            case VMDESCRIPTION -> "VMDESCRIPTION";
            case CONFIGURATION -> "CONFIGURATION";
            case COMMAND -> "COMMAND";
            case SECTION_FOOTER -> "SECTION_FOOTER";
            default -> String.format("0x%02x", type);
        };
    }
}
