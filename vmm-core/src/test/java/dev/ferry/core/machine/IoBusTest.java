package dev.ferry.core.machine;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IoBusTest {
    /** Records accesses; reads return offset | size << 32. */
    static final class Recorder implements BusDevice {
        final List<String> log = new ArrayList<>();

        @Override
        public long read(long offset, int size) {
            log.add("r " + offset + "/" + size);
            return offset | (long) size << 32;
        }

        @Override
        public void write(long offset, int size, long value) {
            log.add("w " + offset + "/" + size + "=" + value);
        }
    }

    @Test
    void dispatchesByWindowWithRelativeOffsets() {
        IoBus bus = new IoBus("pio");
        Recorder a = new Recorder();
        Recorder b = new Recorder();
        bus.register("b", 0x3f8, 8, b);
        bus.register("a", 0x60, 1, a);
        assertEquals(0x3L | 1L << 32, bus.read(0x3fb, 1));
        bus.write(0x60, 1, 0xfe);
        bus.write(0x3f8, 4, 7);
        assertEquals(List.of("w 0/1=254"), a.log);
        assertEquals(List.of("r 3/1", "w 0/4=7"), b.log);
        assertEquals(0, bus.unassignedAccesses());
    }

    @Test
    void unassignedReadsAllOnesAndWritesAreDroppedAndCounted() {
        IoBus bus = new IoBus("mmio");
        bus.register("dev", 0x1000, 0x100, new Recorder());
        assertEquals(0xffL, bus.read(0x0fff, 1));
        assertEquals(0xffffL, bus.read(0x1100, 2));
        assertEquals(0xffffffffL, bus.read(0x2000, 4));
        assertEquals(-1L, bus.read(0x2000, 8));
        bus.write(0x5000, 4, 1);
        assertEquals(5, bus.unassignedAccesses());
    }

    @Test
    void overlappingWindowsAreRefusedWithTheirNames() {
        IoBus bus = new IoBus("mmio");
        bus.register("bar0", 0x1000, 0x1000, new Recorder());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> bus.register("bar1", 0x1800, 0x1000, new Recorder()));
        assertTrue(e.getMessage().contains("bar1") && e.getMessage().contains("bar0"), e.getMessage());
        bus.register("bar1", 0x2000, 0x1000, new Recorder()); // adjacent is fine
    }

    @Test
    void unregisterRemovesTheWindow() {
        IoBus bus = new IoBus("pio");
        Recorder r = new Recorder();
        bus.register("r", 0x70, 2, r);
        bus.unregister(r);
        assertEquals(0xffL, bus.read(0x70, 1));
        assertTrue(r.log.isEmpty());
    }
}
