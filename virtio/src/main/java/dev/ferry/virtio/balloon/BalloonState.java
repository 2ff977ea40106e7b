package dev.ferry.virtio.balloon;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;

import java.io.IOException;

/**
 * The device part of virtio-balloon's {@code virtio} field (Ferry's layout; QEMU's
 * "virtio-balloon-device" carries num_pages, actual and the free-page-report subsection's cmd_id
 * and status):
 * <pre>
 *   be32 num_pages | be32 actual | be32 free_page_hint_cmd_id | be32 free_page_hint_status
 *   | be32 nruns | nruns × (be64 first guest page | be64 pages)      the inflated set, ascending
 * </pre>
 * {@link #load} checks all of it (actual and num_pages within RAM, a known status, runs
 * ascending, disjoint and inside RAM) before the device applies any of it.
 *
 * @param runs the inflated set as (first page, pages) pairs over guest-physical page numbers
 */
record BalloonState(int numPages, int actual, int cmdId, int hintStatus, long[] runs) {

    void save(SaveStream out) throws IOException {
        out.putBe32(numPages);
        out.putBe32(actual);
        out.putBe32(cmdId);
        out.putBe32(hintStatus);
        out.putBe32(runs.length / 2);
        for (long v : runs) {
            out.putBe64(v);
        }
    }

    /** Reads and checks a state for a machine of {@code ramPages} pages; {@code pages} checks the runs. */
    static BalloonState load(LoadStream in, String id, long ramPages, BalloonPages pages)
            throws IOException, MigrationException {
        int num = in.getBe32();
        int act = in.getBe32();
        int cmd = in.getBe32();
        int status = in.getBe32();
        int nruns = in.getBe32();
        if (Integer.toUnsignedLong(num) > ramPages) {
            throw new MigrationException(id + ": num_pages " + Integer.toUnsignedLong(num) + " exceeds the "
                    + ramPages + " pages of RAM");
        }
        if (Integer.toUnsignedLong(act) > ramPages) {
            throw new MigrationException(id + ": actual " + Integer.toUnsignedLong(act) + " exceeds the " + ramPages
                    + " pages of RAM");
        }
        if (FreePageHinting.State.ofWire(status) == null) {
            throw new MigrationException(id + ": unknown free page hint status " + status);
        }
        return new BalloonState(num, act, cmd, status, pages.readRuns(in, nruns));
    }

    /** Pages in the inflated set. */
    long inflatedPages() {
        long total = 0;
        for (int i = 1; i < runs.length; i += 2) {
            total += runs[i];
        }
        return total;
    }
}
