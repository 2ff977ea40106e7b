package dev.ferry.vfio.migration;

import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;

import java.io.IOException;

/**
 * A live participant that runs a test's action in one save phase — to cancel a migration right
 * after the VFIO handlers (saved before it) went through that phase. Registered on both sides
 * under the same idstr; it sends one word per section and asks for nothing else.
 */
final class PhaseHook implements LiveSaveHandler {
    enum Phase { NONE, SETUP, ITERATE, COMPLETE }

    private final Phase phase;
    private final Runnable action;
    private boolean ran;

    PhaseHook(Phase phase, Runnable action) {
        this.phase = phase;
        this.action = action;
    }

    private void at(Phase p) {
        if (p == phase && !ran) {
            ran = true;
            action.run();
        }
    }

    @Override
    public String idstr() {
        return "phase-hook";
    }

    @Override
    public int instanceId() {
        return 0;
    }

    @Override
    public int version() {
        return 1;
    }

    @Override
    public void saveSetup(SaveStream out) throws IOException {
        at(Phase.SETUP);
        out.putBe32(0x70680001);
    }

    @Override
    public boolean saveIterate(SaveStream out) throws IOException {
        at(Phase.ITERATE);
        out.putBe32(0x70680002);
        return true;
    }

    @Override
    public long pendingEstimate() {
        return 0;
    }

    @Override
    public long pendingExact() {
        return 0;
    }

    @Override
    public void saveComplete(SaveStream out) throws IOException {
        at(Phase.COMPLETE);
        out.putBe32(0x70680003);
    }

    @Override
    public void saveCleanup(boolean succeeded) {
    }

    @Override
    public void loadSetup(LoadContext context) {
    }

    @Override
    public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
        int v = in.getBe32();
        if ((v >>> 16) != 0x7068) {
            throw new MigrationException(String.format("phase-hook: unexpected word 0x%08x", v));
        }
    }

    @Override
    public void loadComplete() {
    }

    @Override
    public void loadCleanup(boolean succeeded) {
    }

    @Override
    public boolean switchoverAckNeeded() {
        return false;
    }
}
