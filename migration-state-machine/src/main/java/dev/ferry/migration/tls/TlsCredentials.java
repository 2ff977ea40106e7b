package dev.ferry.migration.tls;

import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;

import javax.net.ssl.SSLException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * QEMU's {@code tls-creds-x509} object: a directory of PEM files for one end of a TLS session.
 * <pre>
 *   ca-cert.pem                       the CA that signs the peer's certificate (needed to verify the peer)
 *   server-cert.pem, server-key.pem   endpoint=server: this host's identity
 *   client-cert.pem, client-key.pem   endpoint=client: this host's identity (mutual TLS), optional
 * </pre>
 * With {@code verify-peer} (the default) a server demands a client certificate signed by the CA,
 * and a client checks the server's certificate against the CA and the expected hostname. Keys are
 * PKCS#8 ({@code BEGIN PRIVATE KEY}) or PKCS#1 RSA ({@code BEGIN RSA PRIVATE KEY}), unencrypted.
 *
 * <p>Loading reads and checks every file at once, so a bad directory is refused when the object is
 * added, not in the middle of a migration. Immutable.
 */
public final class TlsCredentials {
    /** Which end of the session these credentials are for. */
    public enum Endpoint {
        SERVER, CLIENT
    }

    private final String id;
    private final Path dir;
    private final Endpoint endpoint;
    private final boolean verifyPeer;
    private final SslContext context;

    private TlsCredentials(String id, Path dir, Endpoint endpoint, boolean verifyPeer, SslContext context) {
        this.id = id;
        this.dir = dir;
        this.endpoint = endpoint;
        this.verifyPeer = verifyPeer;
        this.context = context;
    }

    /**
     * Reads the credentials in {@code dir} for {@code endpoint}.
     *
     * @throws IllegalArgumentException naming the file that is missing or unreadable and why
     */
    public static TlsCredentials load(String id, Path dir, Endpoint endpoint, boolean verifyPeer) {
        try {
            List<X509Certificate> ca = verifyPeer ? certificates(dir.resolve("ca-cert.pem")) : List.of();
            String prefix = endpoint == Endpoint.SERVER ? "server" : "client";
            Path certFile = dir.resolve(prefix + "-cert.pem");
            Path keyFile = dir.resolve(prefix + "-key.pem");
            SslContextBuilder b;
            if (endpoint == Endpoint.SERVER) {
                b = SslContextBuilder.forServer(privateKey(keyFile), certificates(certFile).toArray(new X509Certificate[0]))
                        .clientAuth(verifyPeer ? ClientAuth.REQUIRE : ClientAuth.NONE);
            } else {
                b = SslContextBuilder.forClient();
                if (Files.exists(certFile) || Files.exists(keyFile)) {
                    b.keyManager(privateKey(keyFile), certificates(certFile).toArray(new X509Certificate[0]));
                }
            }
            if (verifyPeer) {
                b.trustManager(ca.toArray(new X509Certificate[0]));
            } else {
                b.trustManager(io.netty.handler.ssl.util.InsecureTrustManagerFactory.INSTANCE);
            }
            SslContext ctx = b.sslProvider(SslProvider.JDK).protocols("TLSv1.3", "TLSv1.2").build();
            return new TlsCredentials(id, dir, endpoint, verifyPeer, ctx);
        } catch (SSLException e) {
            throw new IllegalArgumentException(id + ": the credentials in " + dir + " do not make a TLS context: "
                    + e.getMessage(), e);
        }
    }

    public String id() {
        return id;
    }

    public Path dir() {
        return dir;
    }

    public Endpoint endpoint() {
        return endpoint;
    }

    public boolean verifyPeer() {
        return verifyPeer;
    }

    SslContext context() {
        return context;
    }

    static List<X509Certificate> certificates(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            List<X509Certificate> out = new ArrayList<>();
            for (var c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                out.add((X509Certificate) c);
            }
            if (out.isEmpty()) {
                throw new IllegalArgumentException("Unable to load " + file + ": no PEM certificate in it");
            }
            return out;
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("Unable to access credentials " + file + ": No such file or directory", e);
        } catch (IOException | GeneralSecurityException e) {
            throw new IllegalArgumentException("Unable to load " + file + ": " + e.getMessage(), e);
        }
    }

    static PrivateKey privateKey(Path file) {
        String pem;
        try {
            pem = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("Unable to access credentials " + file + ": No such file or directory", e);
        } catch (IOException e) {
            throw new IllegalArgumentException("Unable to read " + file + ": " + e.getMessage(), e);
        }
        try {
            byte[] pkcs8;
            String algorithm;
            if (pem.contains("-----BEGIN PRIVATE KEY-----")) {
                pkcs8 = der(pem, "PRIVATE KEY");
                algorithm = null;
            } else if (pem.contains("-----BEGIN RSA PRIVATE KEY-----")) {
                pkcs8 = Pkcs1.toPkcs8(der(pem, "RSA PRIVATE KEY"));
                algorithm = "RSA";
            } else {
                throw new IllegalArgumentException("Unable to load " + file + ": not an unencrypted PKCS#8 or PKCS#1 RSA "
                        + "PEM key (convert with: openssl pkcs8 -topk8 -nocrypt)");
            }
            PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(pkcs8);
            for (String alg : algorithm != null ? List.of(algorithm) : List.of("RSA", "EC", "Ed25519")) {
                try {
                    return KeyFactory.getInstance(alg).generatePrivate(spec);
                } catch (GeneralSecurityException wrongAlgorithm) {
                    // try the next one
                }
            }
            throw new IllegalArgumentException("Unable to load " + file + ": neither an RSA, EC nor Ed25519 key");
        } catch (IllegalArgumentException e) {
            if (e.getMessage() != null && e.getMessage().startsWith("Unable to")) {
                throw e;
            }
            throw new IllegalArgumentException("Unable to load " + file + ": " + e.getMessage(), e);
        }
    }

    private static byte[] der(String pem, String label) {
        String begin = "-----BEGIN " + label + "-----";
        String end = "-----END " + label + "-----";
        int a = pem.indexOf(begin);
        int z = pem.indexOf(end, a);
        if (a < 0 || z < 0) {
            throw new IllegalArgumentException("no complete " + label + " block");
        }
        return Base64.getMimeDecoder().decode(pem.substring(a + begin.length(), z));
    }

    @Override
    public String toString() {
        return "tls-creds-x509 " + id + " (" + endpoint.name().toLowerCase(java.util.Locale.ROOT) + ", " + dir
                + (verifyPeer ? "" : ", verify-peer off") + ")";
    }
}
