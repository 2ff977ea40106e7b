package dev.ferry.migration.tls;

import java.util.List;
import java.util.Objects;

/**
 * QEMU's {@code authz-list} (and {@code authz-simple}, a list with one exact rule and a deny
 * policy): which TLS client identities — the certificate's subject DN in RFC 4514 form, e.g.
 * {@code CN=source.example,O=Ferry} — may open an incoming migration. Rules are tried in order; the
 * first that matches decides; none matching falls to the list's policy. Immutable.
 */
public final class AuthzList {
    public enum Policy {
        ALLOW, DENY
    }

    public enum Format {
        EXACT, GLOB
    }

    /** One rule: an identity (exact, or a glob with {@code *} and {@code ?}) and what it decides. */
    public record Rule(String match, Policy policy, Format format) {
        public Rule {
            Objects.requireNonNull(match, "match");
            Objects.requireNonNull(policy, "policy");
            Objects.requireNonNull(format, "format");
        }

        boolean matches(String identity) {
            if (format == Format.EXACT) {
                return match.equals(identity);
            }
            return glob(match, 0, identity, 0);
        }

        /** fnmatch without flags, as QEMU's glob rules: {@code *} any run, {@code ?} any one character. */
        private static boolean glob(String p, int i, String s, int j) {
            while (i < p.length()) {
                char c = p.charAt(i);
                if (c == '*') {
                    for (int k = j; k <= s.length(); k++) {
                        if (glob(p, i + 1, s, k)) {
                            return true;
                        }
                    }
                    return false;
                }
                if (j >= s.length() || (c != '?' && c != s.charAt(j))) {
                    return false;
                }
                i++;
                j++;
            }
            return j == s.length();
        }
    }

    private final String id;
    private final Policy policy;
    private final List<Rule> rules;

    public AuthzList(String id, Policy policy, List<Rule> rules) {
        this.id = id;
        this.policy = Objects.requireNonNull(policy, "policy");
        this.rules = List.copyOf(rules);
    }

    /** {@code authz-simple}: exactly {@code identity} is allowed. */
    public static AuthzList simple(String id, String identity) {
        return new AuthzList(id, Policy.DENY, List.of(new Rule(identity, Policy.ALLOW, Format.EXACT)));
    }

    public String id() {
        return id;
    }

    public boolean isAllowed(String identity) {
        for (Rule r : rules) {
            if (r.matches(identity)) {
                return r.policy() == Policy.ALLOW;
            }
        }
        return policy == Policy.ALLOW;
    }

    @Override
    public String toString() {
        return "authz " + id + " (" + rules.size() + " rules, default " + policy.name().toLowerCase(java.util.Locale.ROOT)
                + ")";
    }
}
