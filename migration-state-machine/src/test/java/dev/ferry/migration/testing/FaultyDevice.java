package dev.ferry.migration.testing;

import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An iterable test participant that sends a small counter-checked payload in every phase and can
 * fail, or run a hook (to cancel or to kill the peer), in a chosen phase. It asks for two
 * iterations before it lets the migration converge, so the iteration phase always happens.
 * Both sides of a migration register one (the destination must know the section). Shared by the
 * engine's and the devices' failure tests.
 */
public final class FaultyDevice implements LiveSaveHandler {
    public enum Phase { NONE, SAVE_SETUP, SAVE_ITERATE, SAVE_COMPLETE, LOAD_STATE_END, LOAD_COMPLETE, LOAD_CLEANUP }

    private final Phase failAt;
    private final Runnable hookAt;
    private final Phase hookPhase;
    public final AtomicInteger iterations = new AtomicInteger();
    public final AtomicInteger cleanups = new AtomicInteger();
    int loaded;

    public FaultyDevice(Phase failAt, Phase hookPhase, Runnable hook) {
        this.failAt = failAt;
        this.hookPhase = hookPhase;
        this.hookAt = hook;
    }

    public static FaultyDevice healthy() {
        return new FaultyDevice(Phase.NONE, Phase.NONE, () -> { });
    }

    private void phase(Phase p) throws MigrationException {
        if (hookPhase == p) {
            hookAt.run();
        }
        if (failAt == p) {
            throw new MigrationException("fault-dev: injected failure in " + p);
        }
    }

    @Override
    public String idstr() {
        return "fault-dev";
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
    public void saveSetup(SaveStream out) throws IOException, MigrationException {
        phase(Phase.SAVE_SETUP);
        out.putBe32(0xfa010000);
    }

    @Override
    public boolean saveIterate(SaveStream out) throws IOException, MigrationException {
        int n = iterations.incrementAndGet();
        if (n == 2) {
            phase(Phase.SAVE_ITERATE);
        }
        out.putBe32(0xfa020000 | n);
        return n >= 2;
    }

    @Override
    public long pendingEstimate() {
        return iterations.get() >= 2 ? 0 : Long.MAX_VALUE / 4;
    }

    @Override
    public long pendingExact() {
        return pendingEstimate();
    }

    @Override
    public void saveComplete(SaveStream out) throws IOException, MigrationException {
        phase(Phase.SAVE_COMPLETE);
        out.putBe32(0xfa03ffff);
    }

    @Override
    public void saveCleanup(boolean succeeded) {
        cleanups.incrementAndGet();
    }

    @Override
    public void loadSetup(LoadContext context) {
        loaded = 0;
    }

    @Override
    public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
        int v = in.getBe32();
        int tag = v >>> 16;
        if (tag != 0xfa01 && tag != 0xfa02 && tag != 0xfa03) {
            throw new MigrationException(String.format("fault-dev: unexpected word 0x%08x", v));
        }
        loaded++;
        if (tag == 0xfa03) {
            phase(Phase.LOAD_STATE_END);
        }
    }

    @Override
    public void loadComplete() throws MigrationException {
        phase(Phase.LOAD_COMPLETE);
    }

    @Override
    public void loadCleanup(boolean succeeded) {
        cleanups.incrementAndGet();
        if (hookPhase == Phase.LOAD_CLEANUP) {
            hookAt.run();
        }
    }

    @Override
    public boolean switchoverAckNeeded() {
        return false;
    }
}
