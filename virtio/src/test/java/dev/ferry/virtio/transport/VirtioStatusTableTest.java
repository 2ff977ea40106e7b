package dev.ferry.virtio.transport;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.VirtioMmio;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Walks every cell of the device-status table in docs/devices.md: each status a driver can bring a
 * virtio-mmio device to, times each write (or ring error) it can make next, with the resulting
 * status, whether the device serves, and the interrupt status.
 */
class VirtioStatusTableTest {
    enum State { RESET, ACK, DRIVER, FEATURES_OK, DRIVER_OK, NEEDS_RESET }

    enum Event { ACKNOWLEDGE, DRIVER, FEATURES_OK_VALID, FEATURES_OK_INVALID, DRIVER_OK, RESET, RING_ERROR }

    static final int ACK = Virtio.STATUS_ACKNOWLEDGE;
    static final int DRV = Virtio.STATUS_DRIVER;
    static final int FOK = Virtio.STATUS_FEATURES_OK;
    static final int DOK = Virtio.STATUS_DRIVER_OK;
    static final int NR = Virtio.STATUS_NEEDS_RESET;
    static final long RING = 0x10000;
    static final long BASE = 0xD000_0000L;

    private GuestMemory memory;
    private DeviceMemory mem;
    private DeviceEventLoop loop;
    private SoftInterruptController irqchip;
    private VirtioMmio dev;
    private final AtomicInteger starts = new AtomicInteger();

    /** A device with one queue of 8 whose handler pops (so a bad ring is seen) and completes nothing. */
    private final class Model implements VirtioDeviceModel {
        VirtioContext ctx;

        public String name() { return "test-dev"; }
        public int deviceId() { return 42; }
        public int stateVersion() { return 1; }
        public long features() { return 0; }
        public int queueCount() { return 1; }
        public int queueMaxSize() { return 8; }
        public byte[] config() { return new byte[4]; }
        public void restoreConfig(byte[] config) { }
        public void writeConfig(int offset, int size, long value) { }
        public void start(VirtioContext context) { ctx = context; starts.incrementAndGet(); }
        public void queueNotified(int queue) { while (ctx.queue(queue).pop() != null) { } }
        public void quiesce() { }
        public void reset() { ctx = null; }
        public void save(SaveStream out) { }
        public void load(LoadStream in, int version) { }
        public void commitLoad() { }
        public void describe(Map<String, Object> into) { }
        public void close() { }
    }

    @BeforeEach
    void setUp() {
        memory = GuestMemory.ofSize(1 << 20);
        mem = new DeviceMemory(memory);
        loop = new DeviceEventLoop("status-table");
        irqchip = new SoftInterruptController();
        dev = new VirtioMmio("dev", BASE, new Model(), mem, loop, irqchip.claim(5, "dev"));
        dev.onChange(true, RunState.RUNNING);
    }

    @AfterEach
    void tearDown() {
        dev.close();
        loop.close();
        memory.close();
    }

    static Stream<Arguments> cells() {
        List<Arguments> all = new ArrayList<>();
        for (State s : State.values()) {
            for (Event e : Event.values()) {
                all.add(Arguments.of(s, e));
            }
        }
        return all.stream();
    }

    @ParameterizedTest(name = "{0} + {1}")
    @MethodSource("cells")
    void cell(State state, Event event) throws Exception {
        reach(state);
        int before = status();
        int startsBefore = starts.get();
        apply(event, before);
        Expect want = expect(state, event, before);
        assertEquals(want.status, status(), () -> state + " + " + event + ": status");
        assertEquals(want.started, starts.get() > startsBefore, () -> state + " + " + event + ": device started");
        assertEquals(want.configIrq, (isr() & Virtio.ISR_CONFIG) != 0, () -> state + " + " + event + ": config interrupt");
    }

    private record Expect(int status, boolean started, boolean configIrq) {
    }

    private Expect expect(State s, Event e, int before) {
        boolean broken = s == State.NEEDS_RESET;
        boolean configIrqBefore = broken;
        return switch (e) {
            case RESET -> new Expect(0, false, false);
            case ACKNOWLEDGE -> new Expect(before | ACK, false, configIrqBefore);
            case DRIVER -> new Expect(before | DRV, false, configIrqBefore);
            case FEATURES_OK_VALID, FEATURES_OK_INVALID -> new Expect(
                    (before & FOK) != 0 || e == Event.FEATURES_OK_INVALID ? before : before | FOK, false, configIrqBefore);
            case DRIVER_OK -> (before & FOK) == 0 ? new Expect(before | NR, false, false)
                    : new Expect(before | DOK, s == State.FEATURES_OK, configIrqBefore);
            case RING_ERROR -> s == State.DRIVER_OK ? new Expect(before | NR, false, true)
                    : new Expect(before, false, configIrqBefore);
        };
    }

    private void reach(State s) throws Exception {
        switch (s) {
            case RESET -> { }
            case ACK -> write(0x70, ACK);
            case DRIVER -> write(0x70, ACK | DRV);
            case FEATURES_OK -> negotiate();
            case DRIVER_OK -> {
                negotiate();
                write(0x70, ACK | DRV | FOK | DOK);
            }
            case NEEDS_RESET -> {
                negotiate();
                write(0x70, ACK | DRV | FOK | DOK);
                ringError();
            }
        }
    }

    private void negotiate() {
        write(0x70, ACK | DRV);
        write(0x24, 1);
        write(0x20, 1); // VERSION_1 (bit 32)
        write(0x24, 0);
        write(0x20, 0);
        write(0x70, ACK | DRV | FOK);
        write(0x30, 0);
        write(0x38, 8);
        write(0x80, (int) RING);
        write(0x90, (int) (RING + 0x100));
        write(0xa0, (int) (RING + 0x200));
        write(0x44, 1);
    }

    private void apply(Event e, int before) throws Exception {
        switch (e) {
            case ACKNOWLEDGE -> write(0x70, before | ACK);
            case DRIVER -> write(0x70, before | DRV);
            case FEATURES_OK_VALID -> {
                write(0x24, 1);
                write(0x20, 1);
                write(0x70, before | FOK);
            }
            case FEATURES_OK_INVALID -> {
                write(0x24, 1);
                write(0x20, 1 | 1 << 8); // bit 40 is not offered
                write(0x70, before | FOK);
            }
            case DRIVER_OK -> write(0x70, before | DOK);
            case RESET -> write(0x70, 0);
            case RING_ERROR -> ringError();
        }
    }

    /** avail.idx far ahead of the device, then a kick; waits (bounded) for the device to see it or not. */
    private void ringError() throws Exception {
        mem.writeU16(RING + 0x100 + 2, 100);
        write(0x50, 0);
        for (int i = 0; i < 200 && dev.brokenReason() == null; i++) {
            loop.call(() -> null);
            Thread.sleep(1);
        }
    }

    private void write(long reg, int v) {
        dev.write(reg, 4, Integer.toUnsignedLong(v));
    }

    private int status() {
        return (int) dev.read(0x70, 4);
    }

    private int isr() {
        return (int) dev.read(0x60, 4);
    }
}
