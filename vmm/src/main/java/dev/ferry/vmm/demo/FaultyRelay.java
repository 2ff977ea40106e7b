package dev.ferry.vmm.demo;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.CountDownLatch;

/**
 * The network between the demo's source and destination: a loopback TCP relay for one migration
 * (its main connection and, with multifd, every RAM channel, each relayed on its own) that can fail
 * the way networks do — {@link #drop()} resets every connection (the peers see RST),
 * {@link #stall()} stops moving bytes both ways while every connection stays open (a partition,
 * which TCP alone reports only after minutes). Daemon threads; {@link #close()} frees everything.
 */
final class FaultyRelay implements AutoCloseable {
    private final ServerSocket server;
    private final String targetHost;
    private final int targetPort;
    private final CountDownLatch released = new CountDownLatch(1);
    private volatile boolean stalled;
    private volatile boolean dropped;
    private final java.util.List<Socket> sockets = new java.util.concurrent.CopyOnWriteArrayList<>();

    FaultyRelay(String targetHost, int targetPort) throws IOException {
        this.targetHost = targetHost;
        this.targetPort = targetPort;
        this.server = new ServerSocket(0, 16, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::serve, "ferry-demo-relay");
        t.setDaemon(true);
        t.start();
    }

    String uri() {
        return "tcp:127.0.0.1:" + server.getLocalPort();
    }

    /**
     * Resets every connection now (SO_LINGER 0: the close sends RST, not FIN), and any that comes
     * later (a drop before the source connected).
     */
    void drop() {
        dropped = true;
        reset();
    }

    private void reset() {
        for (Socket s : sockets) {
            try {
                s.setSoLinger(true, 0);
                s.close();
            } catch (IOException e) {
                // already gone
            }
        }
    }

    /** From now on nothing moves either way; every connection stays open. */
    void stall() {
        stalled = true;
    }

    private void serve() {
        try {
            while (true) {
                Socket in = server.accept();
                sockets.add(in);
                if (dropped) {
                    reset();
                    continue;
                }
                Socket out = new Socket(targetHost, targetPort);
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
            byte[] buf = new byte[64 << 10];
            try {
                while (true) {
                    int n = from.read(buf);
                    if (n < 0) {
                        to.close();
                        return;
                    }
                    if (stalled) {
                        released.await();
                        return;
                    }
                    to.write(buf, 0, n);
                }
            } catch (IOException e) {
                // dropped or closed
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "ferry-demo-relay-" + name);
        t.setDaemon(true);
        t.start();
    }

    @Override
    public void close() {
        released.countDown();
        try {
            server.close();
        } catch (IOException e) {
            // nothing to free
        }
        reset();
    }
}
