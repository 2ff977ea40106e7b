package dev.ferry.vhostuser.check;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Sockets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A back-end that accepts and never answers costs the check its reply timeout and is named, never a hang. */
@Timeout(20)
class SilentBackendCheckTest {
    @TempDir
    Path dir;

    @Test
    void aSilentBackendStopsTheCheckWithTheReason() throws Exception {
        Path socket = dir.resolve("silent.sock");
        try (Fd listener = Sockets.unixListen(socket, 1)) {
            Thread acceptor = new Thread(() -> {
                try (Fd held = Sockets.accept(listener)) {
                    Thread.sleep(5_000);
                } catch (Exception e) {
                    // the test is over
                }
            });
            acceptor.setDaemon(true);
            acceptor.start();
            VhostUserCheckReport r = VhostUserCheck.run(new VhostUserCheck.Options(socket, "blk", 300, 300, 100, Set.of()));
            assertFalse(r.passed());
            assertTrue(r.aborted().contains("no answer within the reply timeout while waiting for a message"), r.aborted());
            assertEquals(-1, r.features());
            for (VhostUserCheckReport.RuleResult rule : r.rules()) {
                assertEquals(VhostUserCheckReport.Status.SKIPPED, rule.status(), rule.toString());
                assertEquals("not reached: the check stopped", rule.notes().get(0));
            }
            acceptor.interrupt();
        }
    }
}
