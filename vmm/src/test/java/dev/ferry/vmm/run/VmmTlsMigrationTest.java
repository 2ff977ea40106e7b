package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.migration.tls.TestCa;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * TLS migrations between two VMMs driven through QMP exactly as with QEMU: {@code object-add} of
 * {@code tls-creds-x509} (and an authz object) on each side, the {@code tls-*} migration
 * parameters, then {@code migrate}. A trusted pair migrates; a refused one fails on both sides with
 * the reason, and the source guest keeps running.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmTlsMigrationTest {
    private static final TestCa CA = TestCa.create("ferry-vmm-ca");
    @TempDir
    Path dir;
    private LocalVmms vms;

    @BeforeEach
    void setUp() {
        vms = new LocalVmms(dir);
    }

    @AfterEach
    void tearDown() {
        vms.close();
    }

    private void serverSide(Vm dst, TestCa ca, String authzIdentity) throws Exception {
        Path d = ca.writeDir(dir.resolve("dst-creds"), "server", TestCa.Spec.valid("destination.example"), false);
        dst.run("object-add", args("qom-type", "tls-creds-x509", "id", "tls0", "dir", d.toString(), "endpoint", "server"));
        dst.run("object-add", args("qom-type", "authz-simple", "id", "authz0", "identity", authzIdentity));
        dst.run("migrate-set-parameters", args("tls-creds", "tls0", "tls-authz", "authz0"));
    }

    private void clientSide(Vm src, TestCa ca, TestCa.Spec identity) throws Exception {
        Path d = ca.writeDir(dir.resolve("src-creds"), "client", identity, false);
        src.run("object-add", args("qom-type", "tls-creds-x509", "id", "tls0", "dir", d.toString(), "endpoint", "client"));
        src.run("migrate-set-parameters", args("tls-creds", "tls0"));
    }

    @Test
    void aTrustedPairMigratesOverTls() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        TestCa.Spec source = TestCa.Spec.valid("source.example");
        serverSide(dst, CA, source.subject());
        clientSide(src, CA, source);
        JsonNode p = dst.run("query-migrate-parameters");
        assertEquals("tls0", p.path("tls-creds").asText());
        assertEquals("authz0", p.path("tls-authz").asText());
        assertEquals("", p.path("tls-hostname").asText());
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode end = src.awaitMigrationEnd();
        assertEquals("completed", end.path("status").asText(), end.toString());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals("running", dst.runState());
        // The credentials a parameter names cannot be deleted; unnamed, they can.
        src.assertRefused("object-del", args("id", "tls0"), "object 'tls0' is in use, can not be deleted");
        src.run("migrate-set-parameters", args("tls-creds", ""));
        src.run("object-del", args("id", "tls0"));
    }

    /** With multifd every RAM channel is a TLS connection of its own, checked like the main one. */
    @Test
    void multifdChannelsGoOverTlsToo() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        TestCa.Spec source = TestCa.Spec.valid("source.example");
        serverSide(dst, CA, source.subject());
        clientSide(src, CA, source);
        for (Vm vm : java.util.List.of(src, dst)) {
            vm.run("migrate-set-capabilities", LocalVmms.capabilities("multifd", true));
            vm.run("migrate-set-parameters", args("multifd-channels", 2));
        }
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode end = src.awaitMigrationEnd();
        assertEquals("completed", end.path("status").asText(), end.toString());
        assertTrue(end.path("ram").path("multifd-bytes").asLong() > 0, end.toString());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals("running", dst.runState());
    }

    /** A source the authz refuses is refused on every channel; with multifd too, the source keeps running. */
    @Test
    void multifdFromASourceTheAuthzDoesNotNameIsRefused() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        serverSide(dst, CA, "CN=someone-else,O=Ferry test");
        clientSide(src, CA, TestCa.Spec.valid("source.example"));
        for (Vm vm : java.util.List.of(src, dst)) {
            vm.run("migrate-set-capabilities", LocalVmms.capabilities("multifd", true));
        }
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode d = dst.awaitMigrationEnd();
        assertEquals("failed", d.path("status").asText(), d.toString());
        assertTrue(d.path("error-desc").asText().contains("not allowed by authz0"), d.toString());
        JsonNode s = src.awaitMigrationEnd();
        assertEquals("failed", s.path("status").asText(), s.toString());
        assertEquals("running", src.runState());
    }

    @Test
    void aSourceTheAuthzDoesNotNameIsRefusedAndKeepsRunning() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        serverSide(dst, CA, "CN=someone-else,O=Ferry test");
        clientSide(src, CA, TestCa.Spec.valid("source.example"));
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode d = dst.awaitMigrationEnd();
        assertEquals("failed", d.path("status").asText(), d.toString());
        assertTrue(d.path("error-desc").asText().contains("not allowed by authz0"), d.toString());
        JsonNode s = src.awaitMigrationEnd();
        assertEquals("failed", s.path("status").asText(), s.toString());
        assertEquals("running", src.runState());
    }

    @Test
    void aDestinationFromAnotherCaIsRefusedByTheSourceWhichKeepsRunning() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        TestCa.Spec source = TestCa.Spec.valid("source.example");
        serverSide(dst, TestCa.create("other-ca"), source.subject());
        clientSide(src, CA, source);
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode s = src.awaitMigrationEnd();
        assertEquals("failed", s.path("status").asText(), s.toString());
        assertTrue(s.path("error-desc").asText().contains("not signed by the CA"), s.toString());
        assertEquals("running", src.runState());
    }

    @Test
    void badObjectsAndParametersAreRefusedWithQemusMessages() throws Exception {
        Vm src = vms.source("src");
        src.assertRefused("object-add", args("qom-type", "tls-creds-x509", "id", "tls0", "dir",
                dir.resolve("missing").toString(), "endpoint", "client"),
                "Unable to access credentials " + dir.resolve("missing").resolve("ca-cert.pem")
                        + ": No such file or directory");
        src.run("migrate-set-parameters", args("tls-creds", "nope"));
        src.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1"), "No TLS credentials with id 'nope'");
        Path d = CA.writeDir(dir.resolve("srv"), "server", TestCa.Spec.valid("x"), false);
        src.run("object-add", args("qom-type", "tls-creds-x509", "id", "srv", "dir", d.toString(), "endpoint", "server"));
        src.run("migrate-set-parameters", args("tls-creds", "srv"));
        src.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1"),
                "Expected TLS credentials for a client endpoint: 'srv' has endpoint=server");
        assertEquals("running", src.runState());
    }
}
