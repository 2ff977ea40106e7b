package dev.ferry.vmm.bench;

import dev.ferry.migration.tls.MigrationTls;
import dev.ferry.migration.tls.TlsCredentials;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A throw-away CA and a server/client credential pair for benchmarking migration over TLS, made
 * with the {@code openssl} command (P-256 keys, two days' validity; the server certificate names
 * 127.0.0.1): {@code dir/server} and {@code dir/client} in QEMU's {@code tls-creds-x509} layout.
 */
final class BenchCertificates {
    private BenchCertificates() {
    }

    /** The source's and the destination's TLS, from fresh credentials under {@code dir}. */
    record Pair(MigrationTls source, MigrationTls destination) {
    }

    static Pair create(Path dir) throws IOException, InterruptedException {
        Path server = Files.createDirectories(dir.resolve("server"));
        Path client = Files.createDirectories(dir.resolve("client"));
        Path ca = dir.resolve("ca");
        Files.createDirectories(ca);
        openssl(ca, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "ca-key.pem", "-out", "ca-cert.pem", "-days", "2", "-subj", "/O=Ferry bench/CN=bench CA");
        Files.writeString(ca.resolve("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
        issue(ca, server, "server", "/O=Ferry bench/CN=destination");
        issue(ca, client, "client", "/O=Ferry bench/CN=source");
        return new Pair(new MigrationTls(TlsCredentials.load("bench-client", client, TlsCredentials.Endpoint.CLIENT, true),
                null, null),
                new MigrationTls(TlsCredentials.load("bench-server", server, TlsCredentials.Endpoint.SERVER, true),
                        null, null));
    }

    private static void issue(Path ca, Path into, String role, String subject) throws IOException, InterruptedException {
        openssl(ca, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                into.resolve(role + "-key.pem").toString(), "-out", role + ".csr", "-subj", subject);
        openssl(ca, "x509", "-req", "-in", role + ".csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", into.resolve(role + "-cert.pem").toString());
        Files.copy(ca.resolve("ca-cert.pem"), into.resolve("ca-cert.pem"));
    }

    private static void openssl(Path cwd, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (p.waitFor() != 0) {
            throw new IOException("openssl " + String.join(" ", args) + " failed: " + out);
        }
    }
}
