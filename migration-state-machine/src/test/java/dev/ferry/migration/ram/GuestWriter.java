package dev.ferry.migration.ram;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.SaveStream;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A live participant that writes guest RAM while the migration runs, through
 * {@link GuestMemory} (so the VMM's write log sees it), the way a DMA-capable device model does:
 * one page in each of its first {@code iterations} iterate steps, and one more in
 * {@link #saveComplete} — during downtime, before RAM's final pass, which is why such devices
 * save before RAM. Its own section carries no data. Pages are chosen and filled from a seed, so
 * the test knows what the destination must end up with.
 */
final class GuestWriter implements LiveSaveHandler {
    private final GuestMemory memory;
    private final int iterations;
    private final SplittableRandom rnd;
    private final List<Long> written = new ArrayList<>();
    private int iterated;

    GuestWriter(GuestMemory memory, int iterations, long seed) {
        this.memory = memory;
        this.iterations = iterations;
        this.rnd = new SplittableRandom(seed);
    }

    /** Guest-physical addresses of the pages written during the migration, in order. */
    List<Long> written() {
        return List.copyOf(written);
    }

    private void writeOnePage() {
        long pages = memory.totalSize() / 4096;
        long gpa = rnd.nextLong(pages) * 4096;
        byte[] b = new byte[4096];
        rnd.nextBytes(b);
        memory.write(Gpa.of(gpa), b, 0, b.length);
        written.add(gpa);
    }

    @Override
    public String idstr() {
        return "guest-writer";
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
    public void saveSetup(SaveStream out) {
        // nothing to set up: the write log RAM starts records these writes
    }

    @Override
    public boolean saveIterate(SaveStream out) {
        if (iterated++ < iterations) {
            writeOnePage();
        }
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
    public void saveComplete(SaveStream out) {
        writeOnePage();
    }

    @Override
    public void saveCleanup(boolean succeeded) {
        // holds nothing
    }

    @Override
    public void loadSetup(LoadContext context) {
        // the destination side only has to accept the (empty) sections
    }

    @Override
    public void loadState(LoadStream in, int versionId) {
        // empty section
    }

    @Override
    public void loadComplete() {
    }

    @Override
    public void loadCleanup(boolean succeeded) {
        // holds nothing
    }

    @Override
    public boolean switchoverAckNeeded() {
        return false;
    }
}
