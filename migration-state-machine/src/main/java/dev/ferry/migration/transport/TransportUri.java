package dev.ferry.migration.transport;

import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Objects;

/**
 * A migration URI in QEMU's syntax, parsed once so that every error names the URI the user typed:
 * <pre>
 *   tcp:HOST:PORT      HOST is a name, an IPv4 literal or a bracketed IPv6 literal ([::1]);
 *                      empty HOST listens on every address; PORT 0 picks a free port (listen only)
 *   unix:PATH          a UNIX stream socket
 *   file:PATH          a stream file (QEMU's file: migration, analyze-migration.py input)
 * </pre>
 *
 * @param scheme which transport
 * @param host   TCP host as written (without brackets), empty for "any address"; null otherwise
 * @param port   TCP port, or -1
 * @param path   UNIX socket or file path, or null for TCP
 * @param text   the URI as given, for messages
 */
record TransportUri(Scheme scheme, String host, int port, Path path, String text) {

    /** The transports Ferry understands. */
    enum Scheme { TCP, UNIX, FILE }

    private static final String EXPECTED = "expected tcp:HOST:PORT, unix:PATH or file:PATH";

    /**
     * Parses {@code uri}; the result is syntactically valid but not resolved.
     *
     * @throws IllegalArgumentException naming the URI and what is wrong with it
     */
    static TransportUri parse(String uri) {
        Objects.requireNonNull(uri, "migration URI");
        int colon = uri.indexOf(':');
        if (colon <= 0) {
            throw invalid(uri, "no scheme; " + EXPECTED);
        }
        String scheme = uri.substring(0, colon).toLowerCase(Locale.ROOT);
        String rest = uri.substring(colon + 1);
        return switch (scheme) {
            case "tcp" -> parseTcp(uri, rest);
            case "unix" -> new TransportUri(Scheme.UNIX, null, -1, parsePath(uri, rest), uri);
            case "file" -> new TransportUri(Scheme.FILE, null, -1, parsePath(uri, rest), uri);
            default -> throw invalid(uri, "unsupported scheme '" + scheme + "'; " + EXPECTED);
        };
    }

    private static TransportUri parseTcp(String uri, String rest) {
        String host;
        String port;
        if (rest.startsWith("[")) {
            int close = rest.indexOf(']');
            if (close < 0 || close + 1 >= rest.length() || rest.charAt(close + 1) != ':') {
                throw invalid(uri, "expected tcp:[IPV6]:PORT");
            }
            host = rest.substring(1, close);
            port = rest.substring(close + 2);
        } else {
            int last = rest.lastIndexOf(':');
            if (last < 0) {
                throw invalid(uri, "missing port; expected tcp:HOST:PORT");
            }
            host = rest.substring(0, last);
            port = rest.substring(last + 1);
            if (host.indexOf(':') >= 0) {
                throw invalid(uri, "IPv6 addresses must be bracketed, e.g. tcp:[::1]:4444");
            }
        }
        if (port.isEmpty()) {
            throw invalid(uri, "missing port; expected tcp:HOST:PORT");
        }
        int number;
        try {
            number = Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw invalid(uri, "port '" + port + "' is not a number");
        }
        if (number < 0 || number > 65535) {
            throw invalid(uri, "port " + number + " is outside 0-65535");
        }
        return new TransportUri(Scheme.TCP, host, number, null, uri);
    }

    private static Path parsePath(String uri, String rest) {
        if (rest.isEmpty()) {
            throw invalid(uri, "missing path");
        }
        if (rest.indexOf('\0') >= 0) {
            throw invalid(uri, "path contains a NUL byte");
        }
        return Path.of(rest);
    }

    /**
     * Resolves the TCP address on the calling thread, so name lookups never block an event loop.
     *
     * @param forListen whether an empty host (any address) and port 0 are allowed
     */
    InetSocketAddress resolveTcp(boolean forListen) throws IOException {
        if (!forListen && host.isEmpty()) {
            throw invalid(text, "missing host; expected tcp:HOST:PORT");
        }
        if (!forListen && port == 0) {
            throw invalid(text, "port 0 is only valid for listening");
        }
        if (host.isEmpty()) {
            return new InetSocketAddress(port);
        }
        try {
            return new InetSocketAddress(InetAddress.getByName(host), port);
        } catch (UnknownHostException e) {
            throw new IOException((forListen ? "cannot listen on " : "cannot connect to ") + text
                    + ": unknown host '" + host + "'", e);
        }
    }

    /** Formats a socket address as a Ferry TCP URI, bracketing IPv6 literals. */
    static String tcpUri(InetSocketAddress address) {
        InetAddress ip = address.getAddress();
        String literal = ip == null ? address.getHostString() : ip.getHostAddress();
        if (ip instanceof Inet6Address) {
            literal = "[" + literal + "]";
        }
        return "tcp:" + literal + ":" + address.getPort();
    }

    private static IllegalArgumentException invalid(String uri, String why) {
        return new IllegalArgumentException("invalid migration URI '" + uri + "': " + why);
    }
}
