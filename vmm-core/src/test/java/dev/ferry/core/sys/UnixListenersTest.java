package dev.ferry.core.sys;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A socket file is not a listener: only a bound socket that listens counts, and only while it does. */
class UnixListenersTest {
    @TempDir
    Path dir;

    @Test
    void onlyAListeningSocketCounts() throws Exception {
        Path bound = dir.resolve("bound.sock");
        Path served = dir.resolve("served.sock");
        assertFalse(UnixListeners.listening(served), "nothing there yet");
        try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            c.bind(UnixDomainSocketAddress.of(bound)); // bind() without listen(): the window a peer's start has
            assertTrue(Files.exists(bound));
            assertFalse(UnixListeners.listening(bound), "bound but not listening");
        }
        try (ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            s.bind(UnixDomainSocketAddress.of(served));
            assertTrue(UnixListeners.listening(served));
        }
        assertFalse(UnixListeners.listening(served), "closed: no longer listening, though the file stays");
    }
}
