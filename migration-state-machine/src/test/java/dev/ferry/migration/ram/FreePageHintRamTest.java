package dev.ferry.migration.ram;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationRegistry;
import dev.ferry.core.migration.PrecopyNotifier;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * RAM migration's side of free page hinting (QEMU's precopy notifier and
 * {@code qemu_guest_free_page_hint}) through the real engine: the notifier hears every sync
 * before and after and the cleanup; hinted pages are not sent; a page the guest writes after its
 * hint is sent all the same, because the hint cleared the migration's bitmap and not the dirty log
 * that the next sync reads.
 */
@Timeout(60)
class FreePageHintRamTest {
    private static final long MIB = 1 << 20;
    private static final long FREE = 4 * MIB;
    private static final long FREE_LEN = 4 * MIB;
    private static final long REUSED = FREE + 17 * 4096;

    /** A balloon as RAM migration sees it: hints its free region in the first round, then reuses one page. */
    private static final class HintingGuest implements PrecopyNotifier {
        final MigrationRegistry registry;
        final GuestMemory memory;
        final List<String> steps = new ArrayList<>();
        long cleared;
        boolean hinted;

        HintingGuest(MigrationRegistry registry, GuestMemory memory) {
            this.registry = registry;
            this.memory = memory;
        }

        @Override
        public void onPrecopy(Step step, boolean vmStopped) {
            steps.add(step + (vmStopped ? "/stopped" : ""));
            if (step == Step.AFTER_BITMAP_SYNC && !vmStopped && !hinted) {
                hinted = true;
                cleared = registry.guestFreePageHint(FREE, FREE_LEN);
                byte[] page = new byte[4096];
                java.util.Arrays.fill(page, (byte) 0xab);
                memory.write(new Gpa(REUSED), page, 0, page.length); // the guest uses it again
            }
        }
    }

    @Test
    void hintedPagesAreSkippedAndAPageWrittenAfterItsHintIsStillSent() throws Exception {
        long otherPages;
        InMemoryMigration.Saved saved;
        HintingGuest guest;
        try (TestVm src = TestVm.builder("src").ram(8 * MIB).running().build()) {
            src.memory().fill(new Gpa(FREE), FREE_LEN, (byte) 0x5a); // written, then freed by the guest
            otherPages = 64;
            src.memory().fill(new Gpa(MIB), otherPages * 4096, (byte) 0x11);
            guest = new HintingGuest(src.machine().migration(), src.memory());
            src.machine().migration().addPrecopyNotifier(guest);
            saved = InMemoryMigration.saveWithInfo(src.machine());
            assertEquals(FREE_LEN / 4096, guest.cleared, "every page of the free region was pending and is no more");
            assertEquals(0, src.machine().migration().guestFreePageHint(FREE, 4096),
                    "no RAM migration runs: a hint clears nothing");
        }
        assertEquals(otherPages + 1, saved.info().ram().normal(),
                "the 1024 hinted pages are not sent; the reused one is");
        assertEquals("BEFORE_BITMAP_SYNC", guest.steps.get(0));
        assertEquals("AFTER_BITMAP_SYNC", guest.steps.get(1), "the first sync (setup) starts hinting");
        int n = guest.steps.size();
        assertEquals(List.of("BEFORE_BITMAP_SYNC/stopped", "AFTER_BITMAP_SYNC/stopped", "CLEANUP/stopped"),
                guest.steps.subList(n - 3, n), "the downtime sync, then cleanup after success");
        for (int i = 0; i + 1 < n - 1; i += 2) {
            assertTrue(guest.steps.get(i).startsWith("BEFORE") && guest.steps.get(i + 1).startsWith("AFTER"),
                    "every sync is bracketed: " + guest.steps);
        }

        try (TestVm dst = TestVm.builder("dst").ram(8 * MIB).build()) {
            var r = InMemoryMigration.load(dst.machine(), saved.stream());
            assertEquals(MigrationStatus.COMPLETED, r.status(), r::toString);
            assertEquals(0xababababababababL, dst.memory().readLong(new Gpa(REUSED)), "the reused page arrived");
            assertEquals(0x1111111111111111L, dst.memory().readLong(new Gpa(MIB + 4096 * 63)));
            assertEquals(0, dst.memory().readLong(new Gpa(FREE)), "a hinted page was not sent");
        }
    }

    @Test
    void aHintOutsideOneRegionIsRefusedAndPartialPagesAreKept() throws Exception {
        try (TestVm src = TestVm.builder("src").region("pc.ram", 0, 2 * MIB).region("high", 4 * MIB, MIB)
                .running().build()) {
            List<Object> results = new ArrayList<>();
            MigrationRegistry reg = src.machine().migration();
            reg.addPrecopyNotifier((step, stopped) -> {
                if (step == PrecopyNotifier.Step.AFTER_BITMAP_SYNC && results.isEmpty()) {
                    results.add(assertThrows(IllegalArgumentException.class,
                            () -> reg.guestFreePageHint(2 * MIB - 4096, 8192)).getMessage());
                    results.add(assertThrows(IllegalArgumentException.class,
                            () -> reg.guestFreePageHint(64 * MIB, 4096)).getMessage());
                    results.add(reg.guestFreePageHint(100, 4096)); // no whole page
                    results.add(reg.guestFreePageHint(4 * MIB + 100, 3 * 4096)); // two whole pages
                }
            });
            src.memory().fill(new Gpa(4 * MIB), MIB, (byte) 1);
            InMemoryMigration.Saved saved = InMemoryMigration.saveWithInfo(src.machine());
            assertEquals(4, results.size(), results::toString);
            assertTrue(String.valueOf(results.get(0)).contains("not inside one RAM region"), results::toString);
            assertEquals(0L, results.get(2));
            assertEquals(2L, results.get(3));
            assertEquals(256 - 2, saved.info().ram().normal(), "two pages of the high region hinted away");
        }
    }
}
