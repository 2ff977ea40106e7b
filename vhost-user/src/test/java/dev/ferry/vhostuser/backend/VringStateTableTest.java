package dev.ferry.vhostuser.backend;

import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Walks every cell of the ring state table ({@link Vring}, {@code docs/vhost-user.md} "Ring
 * states"): each state reached through the protocol, each event applied, the state read back —
 * and for each started state, whether a request made available is served matches the table.
 */
class VringStateTableTest {
    static Path dir;
    static VhostUserBackend backend;

    @BeforeAll
    static void serve() throws Exception {
        dir = Files.createTempDirectory("vring-table");
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        backend = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(dir.resolve("s.sock")));
    }

    @AfterAll
    static void stop() throws Exception {
        backend.close();
        Files.deleteIfExists(dir.resolve("disk.img"));
        Files.deleteIfExists(dir);
    }

    private static void reach(BlkTestFrontend fe, String state) throws Exception {
        fe.negotiate();
        fe.ring = dev.ferry.virtio.queue.QueueConfig.contiguous(BlkTestFrontend.QUEUE_SIZE, BlkTestFrontend.RING_GPA,
                fe.ringFeatures());
        fe.queue = dev.ferry.virtio.queue.DriverQueue.builder(fe.dm, fe.ring).build();
        fe.conn.request(VhostUser.SET_VRING_NUM, Payloads.vringState(0, BlkTestFrontend.QUEUE_SIZE));
        fe.conn.request(VhostUser.SET_VRING_BASE, Payloads.vringState(0, 0));
        fe.setVringAddr(false);
        if (!state.equals("STOPPED")) {
            fe.conn.request(VhostUser.SET_VRING_KICK, Payloads.u64(0), fe.kick.fd());
        }
        if (state.equals("STARTED_ENABLED")) {
            fe.enable(true);
        }
        assertEquals(state, backend.ringState(0), "reaching " + state);
    }

    private static void apply(BlkTestFrontend fe, String event) throws Exception {
        switch (event) {
            case "KICK" -> fe.conn.request(VhostUser.SET_VRING_KICK, Payloads.u64(0), fe.kick.fd());
            case "ENABLE1" -> fe.enable(true);
            case "ENABLE0" -> fe.enable(false);
            case "GET_VRING_BASE" -> assertEquals(0, fe.getVringBase());
            default -> throw new IllegalArgumentException(event);
        }
    }

    @ParameterizedTest(name = "{0} + {1} -> {2}")
    @CsvSource({
        "STOPPED,          KICK,           STARTED_DISABLED",
        "STOPPED,          ENABLE1,        STOPPED",
        "STOPPED,          ENABLE0,        STOPPED",
        "STOPPED,          GET_VRING_BASE, STOPPED",
        "STARTED_DISABLED, KICK,           STARTED_DISABLED",
        "STARTED_DISABLED, ENABLE1,        STARTED_ENABLED",
        "STARTED_DISABLED, ENABLE0,        STARTED_DISABLED",
        "STARTED_DISABLED, GET_VRING_BASE, STOPPED",
        "STARTED_ENABLED,  KICK,           STARTED_ENABLED",
        "STARTED_ENABLED,  ENABLE1,        STARTED_ENABLED",
        "STARTED_ENABLED,  ENABLE0,        STARTED_DISABLED",
        "STARTED_ENABLED,  GET_VRING_BASE, STOPPED",
    })
    void everyCell(String from, String event, String to) throws Exception {
        try (BlkTestFrontend fe = new BlkTestFrontend(dir.resolve("s.sock"))) {
            reach(fe, from);
            apply(fe, event);
            assertEquals(to, backend.ringState(0));
            fe.read(0, 0, 1);
            fe.kick();
            if (to.equals("STARTED_ENABLED")) {
                fe.awaitUsed(1);
                assertEquals(0, fe.status(0), "an enabled started ring is served");
            } else {
                Thread.sleep(100);
                assertEquals(0xff, fe.status(0), to + " is not served");
            }
        } finally {
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (backend.connected()) {
                assertTrue(System.nanoTime() < deadline);
                Thread.sleep(5);
            }
        }
    }
}
