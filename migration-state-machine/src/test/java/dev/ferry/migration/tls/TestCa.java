package dev.ferry.migration.tls;

import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

import java.io.IOException;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A certificate authority made in the test (BouncyCastle), writing QEMU-style credential
 * directories: {@code ca-cert.pem} plus {@code server-*.pem} or {@code client-*.pem}. Certificates
 * can be issued expired or for other names, to prove each refusal.
 */
public final class TestCa {
    private static final AtomicLong SERIAL = new AtomicLong(System.currentTimeMillis());
    private final String name;
    private final KeyPair keys;
    private final X509Certificate cert;

    private TestCa(String name, KeyPair keys, X509Certificate cert) {
        this.name = name;
        this.keys = keys;
        this.cert = cert;
    }

    public static TestCa create(String commonName) {
        try {
            KeyPair k = ec();
            X500Name subject = new X500Name("O=Ferry test,CN=" + commonName);
            Instant now = Instant.now();
            X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(subject, serial(),
                    Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(1))), subject, k.getPublic());
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
            X509Certificate c = new JcaX509CertificateConverter()
                    .getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(k.getPrivate())));
            return new TestCa(commonName, k, c);
        } catch (Exception e) {
            throw new IllegalStateException("test CA", e);
        }
    }

    /** What to issue: validity and names. */
    public record Spec(String commonName, List<String> ips, List<String> dnsNames, Instant notBefore, Instant notAfter) {
        public static Spec valid(String commonName) {
            Instant now = Instant.now();
            return new Spec(commonName, List.of("127.0.0.1"), List.of("localhost"), now.minus(Duration.ofHours(1)),
                    now.plus(Duration.ofDays(1)));
        }

        public Spec expired() {
            Instant now = Instant.now();
            return new Spec(commonName, ips, dnsNames, now.minus(Duration.ofDays(3)), now.minus(Duration.ofDays(2)));
        }

        public Spec names(List<String> ipList, List<String> dns) {
            return new Spec(commonName, ipList, dns, notBefore, notAfter);
        }

        /** The subject as RFC 4514 prints it (most specific first); encoded O first, as CAs do. */
        public String subject() {
            return "CN=" + commonName + ",O=Ferry test";
        }
    }

    /** Writes {@code dir}/ca-cert.pem and {@code dir}/{role}-cert.pem, {role}-key.pem (PKCS#8, or PKCS#1 when asked). */
    public Path writeDir(Path dir, String role, Spec spec, boolean pkcs1Key) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("ca-cert.pem"), pem(cert));
        KeyPair k = pkcs1Key ? rsa() : ec();
        X509Certificate c = issue(spec, k, role.equals("server"));
        Files.writeString(dir.resolve(role + "-cert.pem"), pem(c));
        Files.writeString(dir.resolve(role + "-key.pem"), pkcs1Key ? pkcs1(k) : pem(k.getPrivate()));
        return dir;
    }

    /** Only the CA certificate (a client without an identity of its own). */
    public Path writeCaOnly(Path dir) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("ca-cert.pem"), pem(cert));
        return dir;
    }

    private X509Certificate issue(Spec s, KeyPair k, boolean server) {
        try {
            X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(cert, serial(), Date.from(s.notBefore()),
                    Date.from(s.notAfter()), new X500Name("O=Ferry test,CN=" + s.commonName()), k.getPublic());
            List<GeneralName> names = new ArrayList<>();
            s.ips().forEach(ip -> names.add(new GeneralName(GeneralName.iPAddress, ip)));
            s.dnsNames().forEach(d -> names.add(new GeneralName(GeneralName.dNSName, d)));
            if (!names.isEmpty()) {
                b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names.toArray(new GeneralName[0])));
            }
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
            b.addExtension(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(server ? KeyPurposeId.id_kp_serverAuth : KeyPurposeId.id_kp_clientAuth));
            return new JcaX509CertificateConverter()
                    .getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(keys.getPrivate())));
        } catch (Exception e) {
            throw new IllegalStateException("issue " + s, e);
        }
    }

    /** P-256: fast to make, so a test can afford a fresh identity per case. */
    private static KeyPair ec() {
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
            g.initialize(256);
            return g.generateKeyPair();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static KeyPair rsa() {
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance("RSA");
            g.initialize(2048);
            return g.generateKeyPair();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static BigInteger serial() {
        return BigInteger.valueOf(SERIAL.incrementAndGet());
    }

    private static String pem(Object o) throws IOException {
        StringWriter w = new StringWriter();
        try (JcaPEMWriter p = new JcaPEMWriter(w)) {
            p.writeObject(o instanceof java.security.PrivateKey k ? new org.bouncycastle.util.io.pem.PemObject(
                    "PRIVATE KEY", k.getEncoded()) : o);
        }
        return w.toString();
    }

    /** The key as {@code BEGIN RSA PRIVATE KEY} (PKCS#1), as older certtool and openssl write it. */
    private static String pkcs1(KeyPair k) throws IOException {
        org.bouncycastle.asn1.pkcs.PrivateKeyInfo info = org.bouncycastle.asn1.pkcs.PrivateKeyInfo.getInstance(
                k.getPrivate().getEncoded());
        byte[] der = info.parsePrivateKey().toASN1Primitive().getEncoded();
        return "-----BEGIN RSA PRIVATE KEY-----\n" + Base64.getMimeEncoder(64, "\n".getBytes()).encodeToString(der)
                + "\n-----END RSA PRIVATE KEY-----\n";
    }

    @Override
    public String toString() {
        return "test CA " + name;
    }
}
