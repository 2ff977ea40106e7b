package dev.ferry.migration.tls;

import dev.ferry.migration.transport.MigrationConnection;
import dev.ferry.migration.transport.MigrationListener;
import dev.ferry.migration.transport.NettyMigrationTransports;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Mutual TLS on the migration channel with a CA made in the test: a stream passes between hosts
 * that trust each other, and each refusal QEMU's model defines — another CA, an expired or missing
 * client certificate, a hostname mismatch, an identity the authz list denies — fails with an error
 * that says which, on the side that detected it.
 */
class TlsTransportTest {
    private static final TestCa CA = TestCa.create("ferry-test-ca");
    private static final TestCa OTHER_CA = TestCa.create("someone-else");
    private static NettyMigrationTransports transports;
    @TempDir
    Path dir;

    @BeforeAll
    static void open() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    private TlsCredentials server(TestCa ca, TestCa.Spec spec) throws IOException {
        return TlsCredentials.load("tls0", ca.writeDir(dir.resolve("server"), "server", spec, false),
                TlsCredentials.Endpoint.SERVER, true);
    }

    private TlsCredentials client(TestCa ca, TestCa.Spec spec) throws IOException {
        return TlsCredentials.load("tls1", ca.writeDir(dir.resolve("client"), "client", spec, false),
                TlsCredentials.Endpoint.CLIENT, true);
    }

    /** What each side saw: a connection or the error. */
    private record Outcome(MigrationConnection source, IOException sourceError, MigrationConnection destination,
                           Exception destinationError) {
    }

    private Outcome run(MigrationTls serverTls, MigrationTls clientTls) throws Exception {
        MigrationListener l = transports.secured(serverTls).listen("tcp:127.0.0.1:0");
        try {
            CompletableFuture<MigrationConnection> accepted = CompletableFuture.supplyAsync(() -> {
                try {
                    return l.accept(Duration.ofSeconds(15));
                } catch (IOException e) {
                    throw new java.util.concurrent.CompletionException(e);
                }
            });
            MigrationConnection src = null;
            IOException srcErr = null;
            try {
                src = transports.secured(clientTls).connect(l.boundUri());
                // TLS 1.3: a client may finish its half before the server judged its certificate;
                // the refusal then arrives on the first exchange.
                ByteBuf b = src.alloc().buffer().writeBytes("QEVM".getBytes(StandardCharsets.US_ASCII));
                src.write(b);
                src.flush();
                src.drain();
            } catch (IOException e) {
                srcErr = e;
            }
            MigrationConnection dst = null;
            Exception dstErr = null;
            try {
                dst = accepted.get(20, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                dstErr = (Exception) e.getCause();
            }
            if (src != null && dst == null) {
                // The source learns of a refusal from the destination's alert or close.
                try {
                    ByteBuf r = src.read();
                    if (r != null) {
                        r.release();
                    }
                } catch (IOException e) {
                    srcErr = e;
                }
                src.close();
                src = null;
            }
            return new Outcome(src, srcErr, dst, dstErr);
        } finally {
            l.close();
        }
    }

    @Test
    void hostsThatTrustEachOtherMoveTheStream() throws Exception {
        TestCa.Spec sourceId = TestCa.Spec.valid("source.example");
        MigrationTls serverTls = new MigrationTls(server(CA, TestCa.Spec.valid("destination.example")), null,
                AuthzList.simple("authz0", sourceId.subject()));
        Outcome o = run(serverTls, new MigrationTls(client(CA, sourceId), null, null));
        assertNotNull(o.source(), () -> "source: " + o.sourceError());
        assertNotNull(o.destination(), () -> "destination: " + o.destinationError());
        try {
            ByteBuf got = o.destination().read();
            byte[] bytes = new byte[got.readableBytes()];
            got.readBytes(bytes);
            got.release();
            assertEquals("QEVM", new String(bytes, StandardCharsets.US_ASCII));
        } finally {
            o.source().close();
            o.destination().close();
        }
    }

    @Test
    void aDestinationSignedByAnotherCaIsRefusedByTheSource() throws Exception {
        MigrationTls serverTls = new MigrationTls(server(OTHER_CA, TestCa.Spec.valid("destination.example")), null, null);
        Outcome o = run(serverTls, new MigrationTls(client(CA, TestCa.Spec.valid("source.example")), null, null));
        assertNotNull(o.sourceError());
        assertTrue(o.sourceError().getMessage().contains("not signed by the CA"), o.sourceError().getMessage());
        assertNotNull(o.destinationError(), "the destination refuses too");
    }

    @Test
    void anExpiredClientCertificateIsRefusedByTheDestination() throws Exception {
        MigrationTls serverTls = new MigrationTls(server(CA, TestCa.Spec.valid("destination.example")), null, null);
        Outcome o = run(serverTls, new MigrationTls(client(CA, TestCa.Spec.valid("source.example").expired()), null,
                null));
        assertNotNull(o.destinationError());
        assertTrue(o.destinationError().getMessage().contains("expired"), o.destinationError().getMessage());
        assertNotNull(o.sourceError(), "the source's migration fails too");
        assertTrue(o.sourceError().getMessage().contains("refused the handshake"), o.sourceError().getMessage());
    }

    @Test
    void aClientWithoutACertificateIsRefusedByTheDestination() throws Exception {
        MigrationTls serverTls = new MigrationTls(server(CA, TestCa.Spec.valid("destination.example")), null, null);
        TlsCredentials anonymous = TlsCredentials.load("tls1", CA.writeCaOnly(dir.resolve("anon")),
                TlsCredentials.Endpoint.CLIENT, true);
        Outcome o = run(serverTls, new MigrationTls(anonymous, null, null));
        assertNotNull(o.destinationError());
        assertTrue(o.destinationError().getMessage().contains("presented no certificate"),
                o.destinationError().getMessage());
        assertNotNull(o.sourceError());
        assertTrue(o.sourceError().getMessage().contains("certificate_required"), o.sourceError().getMessage());
    }

    @Test
    void aHostnameMismatchIsRefusedByTheSource() throws Exception {
        MigrationTls serverTls = new MigrationTls(server(CA, TestCa.Spec.valid("destination.example")), null, null);
        Outcome o = run(serverTls, new MigrationTls(client(CA, TestCa.Spec.valid("source.example")), "other.example",
                null));
        assertNotNull(o.sourceError());
        assertTrue(o.sourceError().getMessage().contains("does not name the expected host"),
                o.sourceError().getMessage());
        // Without tls-hostname the URI's host (127.0.0.1) is checked against the SAN: a certificate
        // for other names only is refused as well.
        TlsCredentials elsewhere = TlsCredentials.load("tls0", CA.writeDir(dir.resolve("server2"), "server",
                TestCa.Spec.valid("destination.example").names(List.of("10.9.9.9"), List.of("far.example")), false),
                TlsCredentials.Endpoint.SERVER, true);
        Outcome o2 = run(new MigrationTls(elsewhere, null, null),
                new MigrationTls(client(CA, TestCa.Spec.valid("source.example")), null, null));
        assertNotNull(o2.sourceError());
        assertTrue(o2.sourceError().getMessage().contains("does not name the expected host"),
                o2.sourceError().getMessage());
    }

    @Test
    void anIdentityTheAuthzListDeniesIsRefused() throws Exception {
        AuthzList list = new AuthzList("authz0", AuthzList.Policy.DENY,
                List.of(new AuthzList.Rule("CN=*.trusted.example,O=Ferry test", AuthzList.Policy.ALLOW,
                        AuthzList.Format.GLOB)));
        MigrationTls serverTls = new MigrationTls(server(CA, TestCa.Spec.valid("destination.example")), null, list);
        Outcome denied = run(serverTls, new MigrationTls(client(CA, TestCa.Spec.valid("rogue.example")), null, null));
        assertNotNull(denied.destinationError());
        assertTrue(denied.destinationError().getMessage().contains("'CN=rogue.example,O=Ferry test'")
                && denied.destinationError().getMessage().contains("not allowed by authz0"),
                denied.destinationError().getMessage());
        Outcome allowed = run(serverTls, new MigrationTls(client(CA, TestCa.Spec.valid("a.trusted.example")), null,
                null));
        assertNotNull(allowed.destination(), () -> "destination: " + allowed.destinationError());
        allowed.source().close();
        allowed.destination().close();
    }

    @Test
    void credentialsAreCheckedWhenLoaded() throws Exception {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> TlsCredentials.load("tls0", dir.resolve("nowhere"), TlsCredentials.Endpoint.SERVER, true));
        assertTrue(missing.getMessage().contains("ca-cert.pem: No such file or directory"), missing.getMessage());
        // PKCS#1 RSA keys (BEGIN RSA PRIVATE KEY) load as well as PKCS#8 ones.
        TlsCredentials pkcs1 = TlsCredentials.load("tls0", CA.writeDir(dir.resolve("p1"), "server",
                TestCa.Spec.valid("destination.example"), true), TlsCredentials.Endpoint.SERVER, true);
        Outcome o = run(new MigrationTls(pkcs1, null, null),
                new MigrationTls(client(CA, TestCa.Spec.valid("source.example")), null, null));
        assertNotNull(o.destination(), () -> "destination: " + o.destinationError());
        o.source().close();
        o.destination().close();
        // Server credentials cannot open a client session, and a UNIX socket needs tls-hostname.
        MigrationTls wrongEnd = new MigrationTls(pkcs1, null, null);
        assertThrows(IllegalArgumentException.class, () -> wrongEnd.checkClient("127.0.0.1"));
        MigrationTls noHost = new MigrationTls(client(CA, TestCa.Spec.valid("source.example")), null, null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> noHost.checkClient(null));
        assertTrue(e.getMessage().contains("tls-hostname"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> transports.secured(noHost).checkUri("file:/tmp/x"));
    }

    @Test
    void globRulesMatchLikeFnmatch() {
        AuthzList l = new AuthzList("a", AuthzList.Policy.ALLOW, List.of(
                new AuthzList.Rule("CN=bad?,O=*", AuthzList.Policy.DENY, AuthzList.Format.GLOB),
                new AuthzList.Rule("CN=exact", AuthzList.Policy.DENY, AuthzList.Format.EXACT)));
        assertTrue(!l.isAllowed("CN=bad1,O=x") && !l.isAllowed("CN=exact"));
        assertTrue(l.isAllowed("CN=bad12,O=x") && l.isAllowed("CN=exact2") && l.isAllowed("CN=good"));
    }
}
