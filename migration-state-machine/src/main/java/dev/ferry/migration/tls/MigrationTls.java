package dev.ferry.migration.tls;

import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.AttributeKey;
import io.netty.util.concurrent.Future;

import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLPeerUnverifiedException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.security.cert.Certificate;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.X509Certificate;
import java.util.concurrent.TimeUnit;

/**
 * TLS on one migration channel, QEMU's model: the {@code tls-creds} object of this end, the
 * {@code tls-hostname} a source checks the destination's certificate against (default: the host
 * of the URI), and the {@code tls-authz} object a destination checks the source's identity with.
 * The handshake completes before a byte of the stream moves; every refusal — an untrusted CA, an
 * expired or missing certificate, a hostname or authz mismatch — is an {@link IOException} saying
 * which, so the migration fails with it and the source keeps running. Immutable.
 */
public final class MigrationTls {
    /** How long a handshake may take (QEMU has no limit; a migration must not hang on a silent peer). */
    public static final long HANDSHAKE_TIMEOUT_MS = 10_000;
    /**
     * The channel's TLS handler, kept beside the pipeline: a handshake that fails closes the
     * channel, which takes the handler out of the pipeline, possibly before
     * {@link #awaitHandshake} looks for it — and the failure's cause is in the handler.
     */
    private static final AttributeKey<SslHandler> HANDLER = AttributeKey.valueOf("ferry-migration-tls");
    private final TlsCredentials creds;
    private final String hostname;
    private final AuthzList authz;

    /**
     * @param hostname the name the peer's certificate must carry (client side); null or empty: the URI's host
     * @param authz    who may connect (server side); null: any client the CA signed
     */
    public MigrationTls(TlsCredentials creds, String hostname, AuthzList authz) {
        this.creds = creds;
        this.hostname = hostname == null || hostname.isEmpty() ? null : hostname;
        this.authz = authz;
    }

    public TlsCredentials credentials() {
        return creds;
    }

    /**
     * The handler a connecting source puts first in its pipeline. {@code uriHost} is the host of a
     * tcp: URI, or null for a UNIX socket (which then needs {@code tls-hostname} to verify a peer).
     */
    public SslHandler clientHandler(ByteBufAllocator alloc, String uriHost, int port) {
        String expected = checkClient(uriHost);
        SSLEngine engine = expected == null ? creds.context().newEngine(alloc)
                : creds.context().newEngine(alloc, expected, port);
        if (creds.verifyPeer()) {
            SSLParameters p = engine.getSSLParameters();
            p.setEndpointIdentificationAlgorithm("HTTPS"); // the certificate's SAN (or CN) must name the host
            engine.setSSLParameters(p);
        }
        return handler(engine);
    }

    /**
     * Checks, before connecting, that these credentials can open a client session to {@code uriHost}
     * (null for a UNIX socket); returns the hostname the server's certificate must carry.
     *
     * @throws IllegalArgumentException server credentials, or no hostname to verify against
     */
    public String checkClient(String uriHost) {
        if (creds.endpoint() != TlsCredentials.Endpoint.CLIENT) {
            throw new IllegalArgumentException("Expected TLS credentials for a client endpoint: " + creds.id()
                    + " is for a server");
        }
        String expected = hostname != null ? hostname : uriHost;
        if (expected == null && creds.verifyPeer()) {
            throw new IllegalArgumentException("No hostname available for TLS: set the tls-hostname migration parameter");
        }
        return expected;
    }

    /** The handler an accepting destination puts first in its pipeline. */
    public SslHandler serverHandler(ByteBufAllocator alloc) {
        if (creds.endpoint() != TlsCredentials.Endpoint.SERVER) {
            throw new IllegalArgumentException("Expected TLS credentials for a server endpoint: " + creds.id()
                    + " is for a client");
        }
        return handler(creds.context().newEngine(alloc));
    }

    /** Puts {@code h} first in {@code channel}'s pipeline and remembers it for {@link #awaitHandshake}. */
    public static void install(Channel channel, SslHandler h) {
        channel.attr(HANDLER).set(h);
        channel.pipeline().addFirst("tls", h);
    }

    private static SslHandler handler(SSLEngine engine) {
        SslHandler h = new SslHandler(engine);
        h.setHandshakeTimeoutMillis(HANDSHAKE_TIMEOUT_MS);
        return h;
    }

    /**
     * Waits for {@code channel}'s handshake; on the server side then checks the client's identity
     * against {@code tls-authz}. Closes the channel on any refusal.
     *
     * @param peer the other end, for the message ({@code tcp:127.0.0.1:4444})
     */
    public void awaitHandshake(Channel channel, String peer) throws IOException {
        SslHandler h = channel.attr(HANDLER).get();
        if (h == null) {
            h = channel.pipeline().get(SslHandler.class);
        }
        if (h == null) {
            channel.close();
            throw new IOException("no TLS handler on the connection with " + peer);
        }
        Future<Channel> done = h.handshakeFuture();
        try {
            if (!done.await(HANDSHAKE_TIMEOUT_MS + 1000, TimeUnit.MILLISECONDS)) {
                channel.close();
                throw new IOException("TLS handshake with " + peer + " did not finish within " + HANDSHAKE_TIMEOUT_MS + " ms");
            }
        } catch (InterruptedException e) {
            channel.close();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted during the TLS handshake with " + peer);
        }
        if (!done.isSuccess()) {
            channel.close();
            throw new IOException("TLS handshake with " + peer + " failed: " + explain(done.cause()), done.cause());
        }
        if (creds.endpoint() == TlsCredentials.Endpoint.SERVER && authz != null) {
            String identity = clientIdentity(h);
            if (identity == null || !authz.isAllowed(identity)) {
                channel.close();
                throw new IOException("TLS client " + (identity == null ? "without a certificate" : "'" + identity + "'")
                        + " from " + peer + " is not allowed by " + authz.id());
            }
        }
    }

    private static String clientIdentity(SslHandler h) {
        try {
            Certificate[] chain = h.engine().getSession().getPeerCertificates();
            return chain.length > 0 && chain[0] instanceof X509Certificate x
                    ? x.getSubjectX500Principal().getName() : null;
        } catch (SSLPeerUnverifiedException e) {
            return null;
        }
    }

    /** What went wrong in words a user can act on, with the JDK's own text after it. */
    public static String explain(Throwable t) {
        String detail = String.valueOf(t.getMessage());
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof CertificateExpiredException || c instanceof java.security.cert.CertPathValidatorException v
                    && v.getReason() == java.security.cert.CertPathValidatorException.BasicReason.EXPIRED) {
                return "a certificate has expired (" + c.getMessage() + ")";
            }
            if (c instanceof CertificateNotYetValidException || c instanceof java.security.cert.CertPathValidatorException v
                    && v.getReason() == java.security.cert.CertPathValidatorException.BasicReason.NOT_YET_VALID) {
                return "a certificate is not valid yet (" + c.getMessage() + ")";
            }
        }
        for (Throwable c = t; c != null; c = c.getCause()) {
            String m = String.valueOf(c.getMessage());
            if (m.contains("No subject alternative") || m.contains("No name matching")) {
                return "the peer's certificate does not name the expected host (" + m + ")";
            }
            if (m.contains("PKIX path") || m.contains("unable to find valid certification path")
                    || c instanceof java.security.cert.CertPathValidatorException) {
                return "the peer's certificate is not signed by the CA in this end's credentials (" + m + ")";
            }
            if (m.contains("Empty client certificate chain") || m.contains("null cert chain")
                    || m.contains("certificate_required")) {
                return "the client presented no certificate and the server requires one (" + m + ")";
            }
            if (m.contains("Received fatal alert")) {
                return "the peer refused the handshake (" + m.replace("Received fatal alert: ", "alert ") + ")";
            }
        }
        return detail;
    }
}
