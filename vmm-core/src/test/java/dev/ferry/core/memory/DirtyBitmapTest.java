package dev.ferry.core.memory;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DirtyBitmapTest {
    @Test
    void setAndGetOnePage() {
        try (DirtyBitmap b = new DirtyBitmap(200)) {
            b.set(0);
            b.set(63);
            b.set(64);
            b.set(199);
            for (long p = 0; p < 200; p++) {
                assertEquals(p == 0 || p == 63 || p == 64 || p == 199, b.get(p), "page " + p);
            }
            assertEquals(4, b.count());
            assertEquals(1L | 1L << 63, b.getWord(0), "page p is bit p % 64 of word p / 64 (KVM's layout)");
            assertEquals(1L, b.getWord(1));
            assertEquals(1L << (199 - 192), b.getWord(3));
            b.set(63);
            assertEquals(4, b.count(), "setting a set bit changes nothing");
        }
    }

    @Test
    void pagesAndWordsOutsideTheBitmapAreRefused() {
        try (DirtyBitmap b = new DirtyBitmap(100)) {
            assertEquals(2, b.words());
            assertThrows(IndexOutOfBoundsException.class, () -> b.set(100));
            assertThrows(IndexOutOfBoundsException.class, () -> b.set(-1));
            assertThrows(IndexOutOfBoundsException.class, () -> b.get(100));
            assertThrows(IndexOutOfBoundsException.class, () -> b.markBytes(99L << DirtyBitmap.PAGE_SHIFT, 8192));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getWord(2));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getAndClearWord(2));
            assertThrows(IndexOutOfBoundsException.class, () -> b.getAndClearWord(-1));
            assertThrows(IndexOutOfBoundsException.class, () -> b.orWord(1L << 40, 1));
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 63, 64, 65, 100, 127, 128, 130, 1000, 262_144 + 5})
    void setAllSetsExactlyThePages(long pages) {
        try (DirtyBitmap b = new DirtyBitmap(pages)) {
            b.setAll();
            assertEquals(pages, b.count());
            assertTrue(b.get(pages - 1));
            long last = b.getWord(b.words() - 1);
            long bitsInLast = pages % 64 == 0 ? 64 : pages % 64;
            assertEquals(bitsInLast, Long.bitCount(last), "no bit beyond page " + (pages - 1));
            b.clearAll();
            assertEquals(0, b.count());
        }
    }

    @Test
    void getAndClearWordHarvestsOneWord() {
        try (DirtyBitmap b = new DirtyBitmap(256)) {
            b.set(1);
            b.set(70);
            b.set(71);
            b.set(200);
            assertEquals(1L << 6 | 1L << 7, b.getAndClearWord(1));
            assertEquals(0, b.getWord(1));
            assertEquals(0, b.getAndClearWord(1));
            assertTrue(b.get(1));
            assertTrue(b.get(200));
            assertEquals(2, b.count());
        }
    }

    @Test
    void orWordKeepsExistingBits() {
        try (DirtyBitmap b = new DirtyBitmap(128)) {
            b.set(64);
            b.orWord(1, 0b110);
            assertEquals(0b111, b.getWord(1));
            b.orWord(1, 0);
            assertEquals(0b111, b.getWord(1));
        }
    }

    @Test
    void drainFromMovesEveryBitAndEmptiesTheSource() {
        try (DirtyBitmap target = new DirtyBitmap(300); DirtyBitmap source = new DirtyBitmap(300)) {
            target.set(5);
            source.set(5);
            source.set(64);
            source.set(299);
            assertEquals(3, target.drainFrom(source), "bits harvested from the source");
            assertEquals(0, source.count());
            assertEquals(3, target.count());
            assertTrue(target.get(5) && target.get(64) && target.get(299));
            assertEquals(0, target.drainFrom(source));
        }
    }

    @Test
    void drainFromABitmapOfAnotherSizeIsRefused() {
        try (DirtyBitmap a = new DirtyBitmap(128); DirtyBitmap b = new DirtyBitmap(129)) {
            b.set(128);
            assertThrows(IllegalArgumentException.class, () -> a.drainFrom(b));
            assertTrue(b.get(128), "a refused drain leaves the source alone");
        }
    }

    @Test
    void markBytesMarksEveryTouchedPage() {
        try (DirtyBitmap b = new DirtyBitmap(256)) {
            b.markBytes(4095, 2);
            assertPages(b, 0, 1);
            b.clearAll();
            b.markBytes(4096, 4096);
            assertPages(b, 1);
            b.clearAll();
            b.markBytes(4096, 4097);
            assertPages(b, 1, 2);
            b.clearAll();
            b.markBytes(63 * 4096 + 4000, 200);
            assertPages(b, 63, 64);
            b.clearAll();
            b.markBytes(10 * 4096 + 1, 3 * 4096);
            assertPages(b, 10, 11, 12, 13);
            b.clearAll();
            b.markBytes(5 * 4096, 0);
            b.markBytes(5 * 4096, -1);
            assertPages(b);
        }
    }

    @Test
    void concurrentSettersLoseNoBit() throws Exception {
        int threads = 4;
        int pages = 64 * 4096;
        // Thread t owns pages p with p % 4 == t, so every word is shared by all four threads. Each
        // thread sets its pages in a shuffled order: the threads then meet on the same word all
        // the time instead of drifting apart, which is what makes a lost update likely to show.
        long[][] order = new long[threads][];
        for (int t = 0; t < threads; t++) {
            long[] mine = new long[pages / threads];
            for (int i = 0; i < mine.length; i++) {
                mine[i] = (long) i * threads + t;
            }
            java.util.Random rnd = new java.util.Random(t);
            for (int i = mine.length - 1; i > 0; i--) {
                int j = rnd.nextInt(i + 1);
                long x = mine[i];
                mine[i] = mine[j];
                mine[j] = x;
            }
            order[t] = mine;
        }
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            for (int round = 0; round < 10; round++) {
                try (DirtyBitmap b = new DirtyBitmap(pages)) {
                    CyclicBarrier start = new CyclicBarrier(threads);
                    List<Future<?>> done = new ArrayList<>();
                    for (int t = 0; t < threads; t++) {
                        long[] mine = order[t];
                        done.add(pool.submit(() -> {
                            start.await();
                            for (long p : mine) {
                                b.set(p);
                            }
                            return null;
                        }));
                    }
                    for (Future<?> f : done) {
                        f.get();
                    }
                    assertEquals(pages, b.count(), "round " + round + ": bits lost under contention");
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static void assertPages(DirtyBitmap b, long... pages) {
        assertEquals(pages.length, b.count(), "dirty page count");
        for (long p : pages) {
            assertTrue(b.get(p), "page " + p + " should be dirty");
        }
        if (pages.length == 0) {
            assertFalse(b.get(0));
        }
    }
}
