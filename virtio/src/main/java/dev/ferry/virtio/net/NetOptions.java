package dev.ferry.virtio.net;

import java.util.Arrays;

/**
 * How a virtio-net device is configured (config kind {@code virtio-net}).
 *
 * @param mac            the MAC the config space offers (VIRTIO_NET_F_MAC)
 * @param queueSize      entries per queue (a power of two, 2..1024)
 * @param guestAnnounce  offer GUEST_ANNOUNCE: after a migration the driver announces itself too
 */
public record NetOptions(byte[] mac, int queueSize, boolean guestAnnounce) {
    public NetOptions {
        if (mac.length != 6 || (mac[0] & 1) != 0) {
            throw new IllegalArgumentException("mac must be a unicast address of 6 bytes, got " + format(mac));
        }
        if (queueSize < 2 || queueSize > 1024 || Integer.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("queue-size must be a power of two from 2 to 1024, got " + queueSize);
        }
        mac = mac.clone();
    }

    @Override
    public byte[] mac() {
        return mac.clone();
    }

    /** {@code 52:54:00:12:34:56} to bytes; an IllegalArgumentException says what is wrong. */
    public static byte[] parseMac(String s) {
        String[] p = s.split(":");
        if (p.length != 6) {
            throw new IllegalArgumentException("'" + s + "' is not a MAC address (six hex bytes with ':')");
        }
        byte[] m = new byte[6];
        for (int i = 0; i < 6; i++) {
            if (p[i].length() != 2) {
                throw new IllegalArgumentException("'" + s + "' is not a MAC address (six hex bytes with ':')");
            }
            try {
                m[i] = (byte) Integer.parseInt(p[i], 16);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("'" + s + "' is not a MAC address (six hex bytes with ':')");
            }
        }
        return m;
    }

    public static String format(byte[] mac) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < mac.length; i++) {
            b.append(i == 0 ? "" : ":").append(String.format("%02x", mac[i] & 0xff));
        }
        return b.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NetOptions n && Arrays.equals(mac, n.mac) && queueSize == n.queueSize
                && guestAnnounce == n.guestAnnounce;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(mac) * 31 + queueSize * 2 + (guestAnnounce ? 1 : 0);
    }

    @Override
    public String toString() {
        return "NetOptions[mac=" + format(mac) + ", queueSize=" + queueSize + ", guestAnnounce=" + guestAnnounce + "]";
    }
}
