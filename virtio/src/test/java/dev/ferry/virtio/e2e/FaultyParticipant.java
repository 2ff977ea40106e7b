package dev.ferry.virtio.e2e;

import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A live migration participant that sends one tagged word per phase and, on the source, fails or
 * runs a hook (to cancel, to kill the destination, to look at the guest) in a chosen phase. It
 * asks for two iterations before it lets the migration converge, so the iteration phase always
 * happens. Both sides register one (the destination must know the section); the destination's
 * only checks the words. The virtio module's own counterpart of the engine test's FaultyDevice.
 */
final class FaultyParticipant implements LiveSaveHandler {
    enum Phase { NONE, SAVE_SETUP, SAVE_ITERATE, SAVE_COMPLETE }

    static final String IDSTR = "fault-part";
    private final Phase failAt;
    private final Phase hookAt;
    private final Runnable hook;
    private final AtomicInteger iterations = new AtomicInteger();
    final AtomicInteger cleanups = new AtomicInteger();

    FaultyParticipant(Phase failAt, Phase hookAt, Runnable hook) {
        this.failAt = failAt;
        this.hookAt = hookAt;
        this.hook = hook;
    }

    static FaultyParticipant healthy() {
        return new FaultyParticipant(Phase.NONE, Phase.NONE, () -> { });
    }

    private void phase(Phase p) throws MigrationException {
        if (hookAt == p) {
            hook.run();
        }
        if (failAt == p) {
            throw new MigrationException(IDSTR + ": injected failure in " + p);
        }
    }

    @Override
    public String idstr() {
        return IDSTR;
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
    }

    @Override
    public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
        int v = in.getBe32();
        int tag = v >>> 16;
        if (tag != 0xfa01 && tag != 0xfa02 && tag != 0xfa03) {
            throw new MigrationException(String.format("%s: unexpected word 0x%08x", IDSTR, v));
        }
    }

    @Override
    public void loadCleanup(boolean succeeded) {
        cleanups.incrementAndGet();
    }

    @Override
    public boolean switchoverAckNeeded() {
        return false;
    }
}
