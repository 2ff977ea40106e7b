package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A byte-level QMP client, as a script with socat would be: sends raw text, reads the server's
 * output line by line and insists every line ends in CRLF. One thread uses it at a time.
 */
final class RawQmpPeer implements AutoCloseable {
    private final SocketChannel channel;
    private final ByteBuffer in = ByteBuffer.allocate(64 * 1024).flip();
    private final String greeting;

    private RawQmpPeer(SocketChannel channel) throws IOException {
        this.channel = channel;
        this.greeting = readLine();
    }

    static RawQmpPeer connect(Path socket) throws IOException {
        SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        channel.connect(UnixDomainSocketAddress.of(socket));
        return new RawQmpPeer(channel);
    }

    /** Connects and completes negotiation. */
    static RawQmpPeer negotiated(Path socket) throws IOException {
        RawQmpPeer peer = connect(socket);
        assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"qmp_capabilities\"}"));
        return peer;
    }

    String greeting() {
        return greeting;
    }

    void send(String text) throws IOException {
        send(text.getBytes(StandardCharsets.UTF_8));
    }

    void send(byte[] bytes) throws IOException {
        ByteBuffer out = ByteBuffer.wrap(bytes);
        while (out.hasRemaining()) {
            channel.write(out);
        }
    }

    /** Ends the client's output (half-close): the server sees end of input. */
    void shutdownOutput() throws IOException {
        channel.shutdownOutput();
    }

    /** Sends {@code request} and returns the next line. */
    String call(String request) throws IOException {
        send(request);
        return readLine();
    }

    /** The next output line without its CRLF; fails if a line ends in a bare LF. */
    String readLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        while (true) {
            int b = readByte();
            if (b == '\n') {
                byte[] bytes = line.toByteArray();
                if (bytes.length == 0 || bytes[bytes.length - 1] != '\r') {
                    fail("QMP output line not terminated by CRLF: " + line);
                }
                return new String(bytes, 0, bytes.length - 1, StandardCharsets.US_ASCII);
            }
            line.write(b);
        }
    }

    JsonNode readJson() throws IOException {
        return QmpWire.JSON.readTree(readLine());
    }

    /** True once the server has closed the connection; fails if it sends more output first. */
    boolean readsEof() throws IOException {
        try {
            fail("expected end of stream, got: " + readLine());
            return false;
        } catch (EOFException e) {
            return true;
        }
    }

    private int readByte() throws IOException {
        if (!in.hasRemaining()) {
            in.clear();
            int n = channel.read(in);
            in.flip();
            if (n < 0) {
                throw new EOFException("QMP server closed the connection");
            }
        }
        return in.get() & 0xFF;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
