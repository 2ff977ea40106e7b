package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.migration.tls.AuthzList;
import dev.ferry.migration.tls.MigrationTls;
import dev.ferry.migration.tls.TlsCredentials;
import dev.ferry.vmm.qmp.QmpArgs;
import dev.ferry.vmm.qmp.QmpError;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The VMM's TLS objects and parameters, QEMU's model: {@code object-add} of
 * {@code tls-creds-x509}, {@code authz-list} and {@code authz-simple}; the migration parameters
 * {@code tls-creds}, {@code tls-hostname} and {@code tls-authz} ({@code ""} = off), which name
 * those objects; and the {@link MigrationTls} a migration uses, resolved when it starts.
 * Thread-safe (the monitor guards both maps and the parameters).
 */
final class VmmTls {
    static final String TLS_CREDS_X509 = "tls-creds-x509";
    static final String AUTHZ_LIST = "authz-list";
    static final String AUTHZ_SIMPLE = "authz-simple";

    private final Map<String, TlsCredentials> creds = new LinkedHashMap<>();
    private final Map<String, AuthzList> authz = new LinkedHashMap<>();
    private String tlsCreds = "";
    private String tlsHostname = "";
    private String tlsAuthz = "";

    /** {@code object-add}: loads and checks the object at once, so a bad directory fails here. */
    synchronized void objectAdd(QmpArgs a) throws QmpError {
        String type = a.requiredString("qom-type");
        String id = a.requiredString("id");
        if (creds.containsKey(id) || authz.containsKey(id)) {
            throw QmpError.generic("attempt to add duplicate property '%s' to object (type 'container')", id);
        }
        switch (type) {
            case TLS_CREDS_X509 -> {
                String dir = a.requiredString("dir");
                String endpoint = a.optionalEnum("endpoint", List.of("server", "client"), "client");
                boolean verify = a.optionalBool("verify-peer", true);
                a.optionalBool("sanity-check", true);
                a.checkNoOtherArguments();
                try {
                    creds.put(id, TlsCredentials.load(id, Path.of(dir), endpoint.equals("server")
                            ? TlsCredentials.Endpoint.SERVER : TlsCredentials.Endpoint.CLIENT, verify));
                } catch (IllegalArgumentException e) {
                    throw QmpError.generic("%s", e.getMessage());
                }
            }
            case AUTHZ_LIST -> {
                AuthzList.Policy policy = policy(a, "policy", AuthzList.Policy.DENY);
                List<AuthzList.Rule> rules = new ArrayList<>();
                for (QmpArgs r : a.optionalObjectList("rules")) {
                    String match = r.requiredString("match");
                    AuthzList.Policy p = policy(r, "policy", null);
                    String format = r.optionalEnum("format", List.of("exact", "glob"), "exact");
                    r.checkNoOtherArguments();
                    rules.add(new AuthzList.Rule(match, p, format.equals("glob") ? AuthzList.Format.GLOB
                            : AuthzList.Format.EXACT));
                }
                a.checkNoOtherArguments();
                authz.put(id, new AuthzList(id, policy, rules));
            }
            case AUTHZ_SIMPLE -> {
                String identity = a.requiredString("identity");
                a.checkNoOtherArguments();
                authz.put(id, AuthzList.simple(id, identity));
            }
            default -> throw QmpError.generic("Invalid parameter type for 'qom-type', expected: one of "
                    + TLS_CREDS_X509 + ", " + AUTHZ_LIST + ", " + AUTHZ_SIMPLE + " (the object types Ferry has)");
        }
    }

    private static AuthzList.Policy policy(QmpArgs a, String name, AuthzList.Policy dflt) throws QmpError {
        String v = dflt == null ? a.requiredEnum(name, List.of("allow", "deny"))
                : a.optionalEnum(name, List.of("allow", "deny"), dflt.name().toLowerCase(Locale.ROOT));
        return v.equals("allow") ? AuthzList.Policy.ALLOW : AuthzList.Policy.DENY;
    }

    /** {@code object-del}: refused while a migration parameter names the object. */
    synchronized void objectDel(String id) throws QmpError {
        if (!creds.containsKey(id) && !authz.containsKey(id)) {
            throw QmpError.generic("object '%s' not found", id);
        }
        if (id.equals(tlsCreds) || id.equals(tlsAuthz)) {
            throw QmpError.generic("object '%s' is in use, can not be deleted", id);
        }
        creds.remove(id);
        authz.remove(id);
    }

    /** {@code migrate-set-parameters}' TLS members; absent ones keep their value. */
    synchronized void setParameters(QmpArgs a) throws QmpError {
        tlsCreds = a.optionalString("tls-creds", tlsCreds);
        tlsHostname = a.optionalString("tls-hostname", tlsHostname);
        tlsAuthz = a.optionalString("tls-authz", tlsAuthz);
    }

    synchronized void report(ObjectNode into) {
        into.put("tls-creds", tlsCreds);
        into.put("tls-hostname", tlsHostname);
        into.put("tls-authz", tlsAuthz);
    }

    /** The TLS an outgoing migration uses, or null when {@code tls-creds} is empty. */
    synchronized MigrationTls forSource() throws VmmException {
        TlsCredentials c = credentials();
        if (c == null) {
            return null;
        }
        if (c.endpoint() != TlsCredentials.Endpoint.CLIENT) {
            throw VmmException.generic("Expected TLS credentials for a client endpoint: '" + tlsCreds
                    + "' has endpoint=server");
        }
        return new MigrationTls(c, tlsHostname, null);
    }

    /** The TLS an incoming migration uses, or null when {@code tls-creds} is empty. */
    synchronized MigrationTls forDestination() throws VmmException {
        TlsCredentials c = credentials();
        if (c == null) {
            return null;
        }
        if (c.endpoint() != TlsCredentials.Endpoint.SERVER) {
            throw VmmException.generic("Expected TLS credentials for a server endpoint: '" + tlsCreds
                    + "' has endpoint=client");
        }
        AuthzList list = null;
        if (!tlsAuthz.isEmpty()) {
            list = authz.get(tlsAuthz);
            if (list == null) {
                throw VmmException.generic("Cannot find authorization object '" + tlsAuthz + "'");
            }
        }
        return new MigrationTls(c, null, list);
    }

    private TlsCredentials credentials() throws VmmException {
        if (tlsCreds.isEmpty()) {
            return null;
        }
        TlsCredentials c = creds.get(tlsCreds);
        if (c == null) {
            throw VmmException.generic("No TLS credentials with id '" + tlsCreds + "'");
        }
        return c;
    }
}
