package dev.ferry.migration;

import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.transport.MigrationConnection;

import java.io.IOException;
import java.util.concurrent.CompletableFuture;

/**
 * The source's reader of the return path: a thread that parses the destination's messages and
 * completes {@link #shut()} with the destination's verdict, or exceptionally when the connection
 * breaks first. Switchover approval is a flag the migration thread polls.
 *
 * <p>A watchdog thread declares the destination lost when nothing came back on the return path
 * for {@code heartbeatTimeoutMs} — counted from the return path's opening until the first message
 * (a Ferry destination sends its first heartbeat as soon as it reads the open request), from the
 * last message after — records why ({@link #lostReason()}) and closes the connection, so a
 * migration thread blocked writing to a stalled or dead peer fails at once with that reason.
 */
final class ReturnPathReader implements Runnable {
    private final MigrationConnection connection;
    private final CompletableFuture<Integer> shut = new CompletableFuture<>();
    private volatile boolean switchoverAcked;
    private final Thread thread;
    private final long heartbeatTimeoutMs;
    private volatile long lastHeardNanos = System.nanoTime();
    private volatile boolean heartbeats;
    private volatile String lostReason;
    // The destination's timing PONGs, in microseconds (-1: not reported).
    private volatile long loadMicros = -1;
    private volatile long verifyMicros = -1;
    private volatile long startMicros = -1;
    private final Thread watchdog;

    ReturnPathReader(MigrationConnection connection, long heartbeatTimeoutMs) {
        this.connection = connection;
        this.heartbeatTimeoutMs = heartbeatTimeoutMs;
        this.thread = new Thread(this, "ferry-return-path");
        thread.setDaemon(true);
        this.watchdog = new Thread(this::watch, "ferry-return-path-watchdog");
        watchdog.setDaemon(true);
    }

    void start() {
        thread.start();
        watchdog.start();
    }

    /** Why the watchdog gave the destination up, or null. */
    String lostReason() {
        return lostReason;
    }

    private void watch() {
        try {
            while (!shut.isDone()) {
                Thread.sleep(Math.min(200, heartbeatTimeoutMs / 4));
                long silentMs = (System.nanoTime() - lastHeardNanos) / 1_000_000L;
                if (silentMs > heartbeatTimeoutMs && !shut.isDone()) {
                    lostReason = "the destination's return path has been silent for " + silentMs + " ms"
                            + (heartbeats ? "" : " since it was opened") + " (heartbeat every "
                            + ReturnPath.HEARTBEAT_INTERVAL_MS + " ms, x-heartbeat-timeout " + heartbeatTimeoutMs
                            + " ms): the destination or the network is gone";
                    connection.close();
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    CompletableFuture<Integer> shut() {
        return shut;
    }

    /**
     * What the destination reported about its phases after the stream's end, or
     * {@link ReturnPath.DestinationTimings#NONE} when it reported nothing (a QEMU or an older Ferry
     * destination). Meaningful once {@link #shut()} completed.
     */
    ReturnPath.DestinationTimings destinationTimings() {
        long l = loadMicros;
        long v = verifyMicros;
        long s = startMicros;
        if (l < 0 || v < 0 || s < 0) {
            return ReturnPath.DestinationTimings.NONE;
        }
        return new ReturnPath.DestinationTimings(l * 1000, v * 1000, s * 1000);
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
        watchdog.interrupt();
        watchdog.join(5000);
    }

    @Override
    public void run() {
        try (ChannelLoadStream in = new ChannelLoadStream(connection)) {
            while (!shut.isDone()) {
                int type = in.getBe16();
                lastHeardNanos = System.nanoTime();
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
                            int v = in.getBe32();
                            int tag = ReturnPath.timingTag(v);
                            long us = v & 0xffffff;
                            if (v == ReturnPath.HEARTBEAT) {
                                heartbeats = true;
                            } else if (tag == ReturnPath.TAG_LOAD) {
                                loadMicros = us;
                            } else if (tag == ReturnPath.TAG_VERIFY) {
                                verifyMicros = us;
                            } else if (tag == ReturnPath.TAG_START) {
                                startMicros = us;
                            } else {
                                pong(v);
                            }
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
