package dev.ferry.vmm.demo;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The demo's fault options are refused when they do not make sense together. */
class DemoFaultsCheckTest {
    private static DemoFaults parse(String... args) {
        DemoFaults f = new DemoFaults();
        new CommandLine(f).parseArgs(args);
        return f;
    }

    @Test
    void oneFaultAtATimeInAPhaseThatExists() {
        assertNull(parse("--network-fault", "drop").check("tcp", 0, false, null, null));
        assertNull(parse().check("tcp", 0, false, "device", null));
        assertTrue(parse("--network-fault", "drop").check("tcp", 0, false, "setup", null).contains("use one of"));
        assertTrue(parse().check("tcp", 0, false, "setup", "active").contains("use one of"));
        assertTrue(parse().check("tcp", 0, false, null, "later").contains("PHASE must be setup, active or device"));
        assertTrue(parse("--backend-dies-at", "sometime").check("tcp", 1 << 20, true, null, null)
                .contains("not 'sometime'"));
    }

    @Test
    void backendDiesNeedsAVhostUserDisk() {
        assertTrue(parse("--backend-dies-at", "active").check("tcp", 32 << 20, false, null, null)
                .contains("needs --vhost-user and a --disk"));
        assertTrue(parse("--backend-dies-at", "active").check("tcp", 0, true, null, null)
                .contains("needs --vhost-user and a --disk"));
        assertNull(parse("--backend-dies-at", "active").check("tcp", 32 << 20, true, null, null));
    }
}
