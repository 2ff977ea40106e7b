package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A rough throughput figure for the socket transports, not a unit test: one producer thread pushes
 * {@code GiB} gibibytes through one connection in {@code BUFFER}-byte pooled direct buffers, one
 * consumer thread reads and releases, both in this process over loopback. The buffers' contents
 * are left as allocated, so this measures the transport, not a fill loop.
 *
 * <pre>
 *   java -cp target/classes:target/test-classes:$(cat /tmp/cp.txt) \
 *        dev.ferry.migration.transport.TransportThroughput [GiB] [bufferBytes...]
 * </pre>
 */
public final class TransportThroughput {
    private TransportThroughput() {
    }

    public static void main(String[] args) throws Exception {
        long gib = args.length > 0 ? Long.parseLong(args[0]) : 4;
        int[] buffers = {256 * 1024};
        if (args.length > 1) {
            buffers = new int[args.length - 1];
            for (int i = 1; i < args.length; i++) {
                buffers[i - 1] = Integer.parseInt(args[i]);
            }
        }
        Path dir = Files.createTempDirectory("ferry-throughput");
        try (NettyMigrationTransports transports = new NettyMigrationTransports()) {
            for (int buffer : buffers) {
                for (String uri : new String[] {"tcp:127.0.0.1:0", "unix:" + dir.resolve("t.sock")}) {
                    measure(transports, uri, 512L << 20, buffer); // warm-up: JIT, pools, socket buffers
                    double seconds = measure(transports, uri, gib << 30, buffer);
                    double bytes = (double) (gib << 30);
                    System.out.printf(Locale.ROOT, "%-5s %4d GiB in %7d-byte buffers: %6.2f s  %6.2f GB/s  (%6.2f GiB/s)%n",
                            uri.substring(0, uri.indexOf(':')), gib, buffer, seconds,
                            bytes / seconds / 1e9, bytes / seconds / (1L << 30));
                }
            }
        } finally {
            Files.deleteIfExists(dir.resolve("t.sock"));
            Files.deleteIfExists(dir);
        }
    }

    /** Seconds from the first write until the consumer has read the last byte. */
    private static double measure(NettyMigrationTransports transports, String uri, long total, int buffer)
            throws Exception {
        try (MigrationListener listener = transports.listen(uri)) {
            MigrationConnection source = transports.connect(listener.boundUri());
            MigrationConnection destination = listener.accept(Duration.ofSeconds(10));
            AtomicLong received = new AtomicLong();
            Thread consumer = new Thread(() -> {
                try {
                    for (ByteBuf chunk; (chunk = destination.read()) != null; ) {
                        received.addAndGet(chunk.readableBytes());
                        chunk.release();
                    }
                } catch (Exception e) {
                    e.printStackTrace();
                }
            }, "throughput-consumer");
            consumer.start();
            long start = System.nanoTime();
            try {
                for (long sent = 0; sent < total; sent += buffer) {
                    ByteBuf buf = source.alloc().directBuffer(buffer, buffer);
                    buf.writerIndex(buffer);
                    source.write(buf);
                }
                source.flush();
                source.drain();
            } finally {
                source.close();
            }
            consumer.join();
            long elapsed = System.nanoTime() - start;
            destination.close();
            if (received.get() != total) {
                throw new IllegalStateException("received " + received.get() + " of " + total + " bytes");
            }
            return elapsed / 1e9;
        }
    }
}
