package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;

import java.lang.reflect.Field;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Netty's leak detector at PARANOID (every buffer tracked), with a listener that records leaks so
 * a test can fail on them instead of only logging. The listener is attached to the ByteBuf detector
 * through reflection because that detector is created when Netty's buffer classes load, which may
 * happen before this class does; if that ever fails, leaks are still logged as Netty errors.
 *
 * <p>Leaks surface only after the garbage collector finds an unreleased buffer, so
 * {@link #assertNoLeaks} collects and allocates (allocation is when Netty polls its reference queue).
 */
final class LeakRecorder {
    private static final List<String> LEAKS = new CopyOnWriteArrayList<>();
    private static final boolean LISTENING;

    static {
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.PARANOID);
        LISTENING = attachListener();
    }

    private LeakRecorder() {
    }

    /** Loads this class: PARANOID detection from here on. */
    static void enable() {
        if (!LISTENING) {
            System.err.println("LeakRecorder: could not attach a leak listener; leaks are only logged");
        }
    }

    /** Fails if Netty reported a leaked buffer since the last call. */
    static void assertNoLeaks() throws InterruptedException {
        for (int round = 0; round < 3; round++) {
            System.gc();
            Thread.sleep(20);
            ByteBuf probe = PooledByteBufAllocator.DEFAULT.directBuffer(8);
            probe.release();
        }
        if (!LEAKS.isEmpty()) {
            List<String> found = List.copyOf(LEAKS);
            LEAKS.clear();
            fail(found.size() + " ByteBuf leak(s):\n" + String.join("\n----\n", found));
        }
    }

    @SuppressWarnings("unchecked")
    private static boolean attachListener() {
        try {
            Class<?> abstractByteBuf = Class.forName("io.netty.buffer.AbstractByteBuf");
            Field field = abstractByteBuf.getDeclaredField("leakDetector");
            field.setAccessible(true);
            ResourceLeakDetector<ByteBuf> detector = (ResourceLeakDetector<ByteBuf>) field.get(null);
            detector.setLeakListener((type, records) -> LEAKS.add(type + ": " + records));
            return true;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return false;
        }
    }
}
