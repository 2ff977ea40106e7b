package dev.ferry.migration;

import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.transport.MigrationConnection;

import java.io.IOException;
import java.util.concurrent.CompletableFuture;

/**
 * The source's reader of the return path: a thread that parses the destination's messages and
 * completes {@link #shut()} with the destination's verdict, or exceptionally when the connection
 * breaks first. Switchover approval is a flag the migration thread polls.
 */
final class ReturnPathReader implements Runnable {
    private final MigrationConnection connection;
    private final CompletableFuture<Integer> shut = new CompletableFuture<>();
    private volatile boolean switchoverAcked;
    private final Thread thread;

    ReturnPathReader(MigrationConnection connection) {
        this.connection = connection;
        this.thread = new Thread(this, "ferry-return-path");
        thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    CompletableFuture<Integer> shut() {
        return shut;
    }

    boolean switchoverAcked() {
        return switchoverAcked;
    }

    private final Object pongs = new Object();
    private int lastPong = -1;

    private void pong(int value) {
        synchronized (pongs) {
            lastPong = value;
            pongs.notifyAll();
        }
    }

    /**
     * Waits until the destination answered PING {@code value} with its PONG — it has processed
     * everything sent before the PING — or {@code timeoutMs} passed, or the return path ended.
     * Returns whether the PONG came.
     */
    boolean awaitPong(int value, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        synchronized (pongs) {
            while (lastPong != value && !shut.isDone()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                pongs.wait(Math.max(1, left / 1_000_000L));
            }
            return lastPong == value;
        }
    }

    void join() throws InterruptedException {
        thread.join(5000);
    }

    @Override
    public void run() {
        try (ChannelLoadStream in = new ChannelLoadStream(connection)) {
            while (!shut.isDone()) {
                int type = in.getBe16();
                int len = in.getBe16();
                if (len > ReturnPath.MAX_PAYLOAD) {
                    throw new IOException("return path: message " + type + " with " + len + " bytes");
                }
                switch (type) {
                    case ReturnPath.MSG_SHUT -> {
                        if (len != 4) {
                            throw new IOException("return path: SHUT with " + len + " bytes");
                        }
                        shut.complete(in.getBe32());
                    }
                    case ReturnPath.MSG_SWITCHOVER_ACK -> {
                        in.skip(len);
                        switchoverAcked = true;
                    }
                    case ReturnPath.MSG_PONG -> {
                        if (len == 4) {
                            pong(in.getBe32());
                        } else {
                            in.skip(len);
                        }
                    }
                    default -> throw new IOException("return path: unsupported message type " + type);
                }
            }
        } catch (IOException | RuntimeException e) {
            shut.completeExceptionally(e);
        } finally {
            synchronized (pongs) {
                pongs.notifyAll();
            }
        }
    }
}
