package dev.ferry.migration.tls;

import java.io.ByteArrayOutputStream;

/**
 * Wraps a PKCS#1 {@code RSAPrivateKey} (what {@code BEGIN RSA PRIVATE KEY} holds) into the PKCS#8
 * {@code PrivateKeyInfo} the JDK's key factory reads: SEQUENCE { INTEGER 0, AlgorithmIdentifier
 * rsaEncryption NULL, OCTET STRING pkcs1 } (RFC 5208).
 */
final class Pkcs1 {
    /** DER of {@code AlgorithmIdentifier { 1.2.840.113549.1.1.1, NULL }}. */
    private static final byte[] RSA_ALGORITHM = {0x30, 0x0d, 0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86,
            (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
    private static final byte[] VERSION_0 = {0x02, 0x01, 0x00};

    private Pkcs1() {
    }

    static byte[] toPkcs8(byte[] pkcs1) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.writeBytes(VERSION_0);
        body.writeBytes(RSA_ALGORITHM);
        body.writeBytes(tlv(0x04, pkcs1));
        return tlv(0x30, body.toByteArray());
    }

    private static byte[] tlv(int tag, byte[] value) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.write(tag);
        int n = value.length;
        if (n < 0x80) {
            o.write(n);
        } else {
            int bytes = n > 0xffffff ? 4 : n > 0xffff ? 3 : n > 0xff ? 2 : 1;
            o.write(0x80 | bytes);
            for (int i = bytes - 1; i >= 0; i--) {
                o.write(n >>> (8 * i));
            }
        }
        o.writeBytes(value);
        return o.toByteArray();
    }
}
