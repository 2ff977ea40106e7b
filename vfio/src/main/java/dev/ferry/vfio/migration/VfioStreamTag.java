package dev.ferry.vfio.migration;

/**
 * The tags that delimit a VFIO device's data in its migration section: QEMU's
 * {@code VFIO_MIG_FLAG_*} (hw/vfio/migration.c), big-endian u64 made of 0xffffffff, the magic
 * 0xef10 ("emulated function IO") and a 16-bit tag. Where each appears, section by section:
 * <pre>
 *   START (save setup)     SETUP_STATE END_OF_STATE
 *   PART  (iterate)        [DATA_STATE be64 n, n bytes]  then END_OF_STATE, or INIT_DATA_SENT once
 *                          the device's precopy-initial data is out and switchover-ack is on
 *   END   (complete)       (DATA_STATE be64 n, n bytes)*  END_OF_STATE
 *   FULL  (config)         CONFIG_STATE be32 m, m bytes of config state, END_OF_STATE
 * </pre>
 * The config payload is Ferry's (a length and the device owner's bytes); QEMU writes vfio-pci's
 * VMState there. CONFIG_LOAD_READY belongs to QEMU's multifd device-state transfer, which Ferry
 * does not implement: it is never written and refused when read.
 */
public final class VfioStreamTag {
    public static final long END_OF_STATE = 0xffffffffef100001L;
    public static final long CONFIG_STATE = 0xffffffffef100002L;
    public static final long SETUP_STATE = 0xffffffffef100003L;
    public static final long DATA_STATE = 0xffffffffef100004L;
    public static final long INIT_DATA_SENT = 0xffffffffef100005L;
    public static final long CONFIG_LOAD_READY = 0xffffffffef100006L;

    private VfioStreamTag() {
    }

    /** The tag's name for messages, or its hex value when it is none of them. */
    public static String name(long tag) {
        if (tag == END_OF_STATE) {
            return "END_OF_STATE";
        } else if (tag == CONFIG_STATE) {
            return "CONFIG_STATE";
        } else if (tag == SETUP_STATE) {
            return "SETUP_STATE";
        } else if (tag == DATA_STATE) {
            return "DATA_STATE";
        } else if (tag == INIT_DATA_SENT) {
            return "INIT_DATA_SENT";
        } else if (tag == CONFIG_LOAD_READY) {
            return "CONFIG_LOAD_READY";
        }
        return String.format("0x%016x", tag);
    }
}
