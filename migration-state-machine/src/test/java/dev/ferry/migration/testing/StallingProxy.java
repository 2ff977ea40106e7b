package dev.ferry.migration.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.CountDownLatch;

/**
 * A TCP relay between a source and a destination that can stall: after {@link #stall()} it stops
 * moving bytes in both directions but keeps both connections open — a partitioned network or a
 * frozen peer, which TCP alone never reports. Serves every connection made to it (a migration's
 * main channel and its multifd channels), each to the target.
 */
public final class StallingProxy implements AutoCloseable {
    private final ServerSocket server;
    private final InetSocketAddress target;
    private final CountDownLatch stalled = new CountDownLatch(1);
    private volatile boolean stalling;
    private final java.util.List<Socket> sockets = new java.util.concurrent.CopyOnWriteArrayList<>();

    public StallingProxy(InetSocketAddress target) throws IOException {
        this.target = target;
        this.server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::serve, "stalling-proxy");
        t.setDaemon(true);
        t.start();
    }

    /** The URI the source migrates to. */
    public String uri() {
        return "tcp:127.0.0.1:" + server.getLocalPort();
    }

    /** From now on no byte moves either way; the connections stay open. */
    public void stall() {
        stalling = true;
    }

    private void serve() {
        try {
            while (true) {
                Socket in = server.accept();
                sockets.add(in);
                Socket out = new Socket(target.getAddress(), target.getPort());
                sockets.add(out);
                pump(in.getInputStream(), out.getOutputStream(), "to-destination");
                pump(out.getInputStream(), in.getOutputStream(), "to-source");
            }
        } catch (IOException e) {
            // closed
        }
    }

    private void pump(InputStream from, OutputStream to, String name) {
        Thread t = new Thread(() -> {
            byte[] buf = new byte[16384];
            try {
                while (true) {
                    if (stalling) {
                        stalled.await(); // forever: nothing read, nothing closed
                    }
                    int n = from.read(buf);
                    if (n < 0) {
                        to.close();
                        return;
                    }
                    if (stalling) {
                        stalled.await();
                    }
                    to.write(buf, 0, n);
                }
            } catch (IOException e) {
                // a side closed
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "stalling-proxy-" + name);
        t.setDaemon(true);
        t.start();
    }

    @Override
    public void close() throws IOException {
        stalled.countDown();
        server.close();
        for (Socket s : sockets) {
            s.close();
        }
    }
}
