package dev.ferry.migration.analyze;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The names of a virtio device's status, interrupt-status and feature bits (virtio 1.x
 * content.tex 2.1 and 6, blk/, net/ and balloon/description.tex), so the analyzer can print them
 * next to the numbers. Feature bits 0–23 are the device type's own: they are named for the
 * devices known by their vmsd name, and printed as "bit N" for any other.
 */
final class VirtioBits {
    private static final String[] STATUS = bits(Map.of(0, "ACKNOWLEDGE", 1, "DRIVER", 2, "DRIVER_OK",
            3, "FEATURES_OK", 4, "SUSPEND", 6, "NEEDS_RESET", 7, "FAILED"));
    private static final String[] ISR = bits(Map.of(0, "QUEUE", 1, "CONFIG"));
    private static final String[] TRANSPORT = bits(Map.ofEntries(Map.entry(24, "NOTIFY_ON_EMPTY"),
            Map.entry(27, "ANY_LAYOUT"), Map.entry(28, "INDIRECT_DESC"), Map.entry(29, "EVENT_IDX"),
            Map.entry(32, "VERSION_1"), Map.entry(33, "ACCESS_PLATFORM"), Map.entry(34, "RING_PACKED"),
            Map.entry(35, "IN_ORDER"), Map.entry(36, "ORDER_PLATFORM"), Map.entry(37, "SR_IOV"),
            Map.entry(38, "NOTIFICATION_DATA"), Map.entry(39, "NOTIF_CONFIG_DATA"), Map.entry(40, "RING_RESET"),
            Map.entry(41, "ADMIN_VQ")));
    private static final Map<String, String[]> DEVICE = Map.of(
            "virtio-blk", bits(Map.ofEntries(Map.entry(0, "BARRIER"), Map.entry(1, "SIZE_MAX"),
                    Map.entry(2, "SEG_MAX"), Map.entry(4, "GEOMETRY"), Map.entry(5, "RO"), Map.entry(6, "BLK_SIZE"),
                    Map.entry(7, "SCSI"), Map.entry(9, "FLUSH"), Map.entry(10, "TOPOLOGY"),
                    Map.entry(11, "CONFIG_WCE"), Map.entry(12, "MQ"), Map.entry(13, "DISCARD"),
                    Map.entry(14, "WRITE_ZEROES"), Map.entry(15, "LIFETIME"), Map.entry(16, "SECURE_ERASE"),
                    Map.entry(17, "ZONED"))),
            "virtio-net", bits(Map.ofEntries(Map.entry(0, "CSUM"), Map.entry(1, "GUEST_CSUM"),
                    Map.entry(2, "CTRL_GUEST_OFFLOADS"), Map.entry(3, "MTU"), Map.entry(5, "MAC"),
                    Map.entry(7, "GUEST_TSO4"), Map.entry(8, "GUEST_TSO6"), Map.entry(9, "GUEST_ECN"),
                    Map.entry(10, "GUEST_UFO"), Map.entry(11, "HOST_TSO4"), Map.entry(12, "HOST_TSO6"),
                    Map.entry(13, "HOST_ECN"), Map.entry(14, "HOST_UFO"), Map.entry(15, "MRG_RXBUF"),
                    Map.entry(16, "STATUS"), Map.entry(17, "CTRL_VQ"), Map.entry(18, "CTRL_RX"),
                    Map.entry(19, "CTRL_VLAN"), Map.entry(21, "GUEST_ANNOUNCE"), Map.entry(22, "MQ"),
                    Map.entry(23, "CTRL_MAC_ADDR"))),
            "virtio-balloon", bits(Map.of(0, "MUST_TELL_HOST", 1, "STATS_VQ", 2, "DEFLATE_ON_OOM",
                    3, "FREE_PAGE_HINT", 4, "PAGE_POISON", 5, "REPORTING")));
    private static final String[] NONE = new String[64];

    private VirtioBits() {
    }

    static FieldValue.Flags status(int value) {
        return new FieldValue.Flags(value, 1, names(value, STATUS, NONE));
    }

    static FieldValue.Flags isr(int value) {
        return new FieldValue.Flags(value, 1, names(value, ISR, NONE));
    }

    /** Guest features of {@code size} bytes (4: bits 0–31 only, 8: all) of the device {@code vmsd}. */
    static FieldValue.Flags features(long value, int size, String vmsd) {
        return new FieldValue.Flags(value, size, names(value, TRANSPORT, vmsd == null ? NONE : DEVICE.getOrDefault(vmsd, NONE)));
    }

    private static List<String> names(long value, String[] common, String[] device) {
        List<String> out = new ArrayList<>(Long.bitCount(value));
        for (int bit = 0; bit < 64; bit++) {
            if ((value & 1L << bit) != 0) {
                String n = common[bit] != null ? common[bit] : device[bit];
                out.add(n != null ? n : "bit " + bit);
            }
        }
        return out;
    }

    private static String[] bits(Map<Integer, String> names) {
        String[] a = new String[64];
        names.forEach((bit, name) -> a[bit] = name);
        return a;
    }
}
