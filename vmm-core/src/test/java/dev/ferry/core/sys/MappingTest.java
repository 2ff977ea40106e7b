package dev.ferry.core.sys;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MappingTest {
    @Test
    void sharedMappingAtAnOffsetSeesThatPartOfTheFile() {
        // The offset is mmap's sixth argument: this is the regression test for passing it intact.
        try (Fd memfd = Sys.memfdCreate("ferry-mapping-test", Linux.MFD_CLOEXEC)) {
            Sys.ftruncate(memfd, 3 * Linux.PAGE_SIZE);
            try (Mapping whole = Mapping.shared(memfd, 0, 3 * Linux.PAGE_SIZE);
                 Mapping second = Mapping.shared(memfd, 2 * Linux.PAGE_SIZE, Linux.PAGE_SIZE)) {
                NativeMemory.putLong(whole.address() + 2 * Linux.PAGE_SIZE, 0x1122334455667788L);
                assertEquals(0x1122334455667788L, NativeMemory.getLong(second.address()));
                NativeMemory.putInt(second.address() + 100, 42);
                assertEquals(42, NativeMemory.getInt(whole.address() + 2 * Linux.PAGE_SIZE + 100));
            }
        }
    }

    @Test
    void unalignedOffsetFailsWithTheCallAndErrno() {
        try (Fd memfd = Sys.memfdCreate("ferry-mapping-test", Linux.MFD_CLOEXEC)) {
            Sys.ftruncate(memfd, 2 * Linux.PAGE_SIZE);
            NativeCallException e = assertThrows(NativeCallException.class, () -> Mapping.shared(memfd, 100, 4096));
            assertEquals("mmap", e.call());
            assertEquals(Errno.EINVAL, e.errno());
            assertTrue(e.getMessage().contains("offset=100"), e.getMessage());
        }
    }

    @Test
    void anonymousMappingIsZeroed() {
        try (Mapping m = Mapping.anonymous(2 * Linux.PAGE_SIZE)) {
            assertTrue(NativeMemory.isZero(m.address(), 2 * Linux.PAGE_SIZE));
        }
    }

    @Test
    void closeUnmapsOnce() throws Exception {
        // A unique memfd name identifies this mapping in /proc/self/maps even if the address is reused.
        String name = "ferry-unmap-check-" + System.nanoTime();
        try (Fd memfd = Sys.memfdCreate(name, Linux.MFD_CLOEXEC)) {
            Sys.ftruncate(memfd, Linux.PAGE_SIZE);
            Mapping m = Mapping.shared(memfd, 0, Linux.PAGE_SIZE);
            assertTrue(mapsMention(name));
            m.close();
            assertFalse(m.isMapped());
            assertFalse(mapsMention(name), "close() unmaps");
            m.close();
            assertThrows(IllegalStateException.class, m::address);
        }
    }

    private static boolean mapsMention(String name) throws Exception {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().anyMatch(l -> l.contains(name));
    }
}
