package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Commands of all clients run one at a time on the ferry-qmp thread, never on the event loop. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class QmpDispatchSerializationTest {
    @TempDir
    Path dir;
    private QmpServer server;
    private final AtomicInteger running = new AtomicInteger();
    private final AtomicInteger mostAtOnce = new AtomicInteger();
    private final AtomicInteger calls = new AtomicInteger();
    private final Semaphore entered = new Semaphore(0);
    private final CountDownLatch release = new CountDownLatch(1);
    private final List<String> threads = new ArrayList<>();
    private ExecutorService callers;

    @BeforeEach
    void start() throws IOException {
        QmpCommands commands = new QmpCommands()
                .register("hold", args -> {
                    enter();
                    entered.release();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return leave();
                })
                .register("critical", args -> {
                    enter();
                    LockSupport.parkNanos(50_000);
                    return leave();
                });
        server = new QmpServer(dir.resolve("qmp.sock"), DummyCommands.VERSION, commands);
        callers = Executors.newCachedThreadPool();
    }

    @AfterEach
    void stop() throws InterruptedException {
        release.countDown();
        server.close();
        callers.shutdownNow();
        assertTrue(callers.awaitTermination(30, TimeUnit.SECONDS));
    }

    @Test
    void aSecondClientsCommandWaitsForTheFirstToFinish() throws Exception {
        try (QmpClient a = negotiatedClient(); QmpClient b = negotiatedClient()) {
            Future<JsonNode> first = callers.submit(() -> a.execute("hold"));
            entered.acquire();
            Future<JsonNode> second = callers.submit(() -> b.execute("hold"));
            while (server.dispatcher().queuedRequests() == 0) {
                Thread.sleep(1);
            }
            assertEquals(0, entered.availablePermits(), "second command started while the first ran");
            assertEquals(1, running.get());
            release.countDown();
            first.get();
            second.get();
            assertEquals(1, mostAtOnce.get());
            assertEquals(2, calls.get());
        }
    }

    @Test
    void manyClientsCallingAtOnceNeverOverlap() throws Exception {
        List<QmpClient> clients = new ArrayList<>();
        try {
            for (int i = 0; i < 4; i++) {
                clients.add(negotiatedClient());
            }
            List<Future<?>> work = new ArrayList<>();
            for (QmpClient client : clients) {
                work.add(callers.submit(() -> {
                    for (int n = 0; n < 50; n++) {
                        client.execute("critical");
                    }
                    return null;
                }));
            }
            for (Future<?> f : work) {
                f.get();
            }
        } finally {
            clients.forEach(QmpClient::close);
        }
        assertEquals(200, calls.get());
        assertEquals(1, mostAtOnce.get());
        synchronized (threads) {
            assertEquals(List.of(QmpDispatcher.THREAD_NAME), threads.stream().distinct().toList());
        }
    }

    private void enter() {
        mostAtOnce.accumulateAndGet(running.incrementAndGet(), Math::max);
        calls.incrementAndGet();
        synchronized (threads) {
            threads.add(Thread.currentThread().getName());
        }
    }

    private JsonNode leave() {
        running.decrementAndGet();
        return null;
    }

    private QmpClient negotiatedClient() throws IOException {
        QmpClient client = QmpClient.connect(server.socketPath(), Duration.ofSeconds(10));
        client.negotiate();
        return client;
    }
}
