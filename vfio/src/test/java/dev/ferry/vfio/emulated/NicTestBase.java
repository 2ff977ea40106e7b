package dev.ferry.vfio.emulated;

import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static dev.ferry.vfio.emulated.NicRegisters.*;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the NIC tests share: two guest memories, an owner of what a test opens, a VF with a driver. */
abstract class NicTestBase {    static final long BAR = 0xFE00_0000L;
    static final long MEMORY = 32L << 20;
    static final NicDriver.Layout LAYOUT = NicDriver.Layout.standard(4L << 20);

    final GuestMemory memoryA = GuestMemory.ofSize(MEMORY);
    final GuestMemory memoryB = GuestMemory.ofSize(MEMORY);
    private final List<AutoCloseable> owned = new ArrayList<>();

    @AfterEach
    void close() throws Exception {
        for (int i = owned.size() - 1; i >= 0; i--) {
            owned.get(i).close();
        }
        memoryA.close();
        memoryB.close();
    }

    <T extends AutoCloseable> T own(T t) {
        if (t != null) {
            owned.add(t);
        }
        return t;
    }

    /** A VF on {@code memory}, its BAR on a fresh MMIO bus, and a driver for it. */
    record Nic(EmulatedNicVf vf, IoBus mmio, NicDriver driver) {
    }

    Nic nic(String flags, GuestMemory memory) {
        EmulatedNicVf vf = own(new EmulatedNicVf("nic0", EmulatedVfSpec.parse("state=256K,dirty-rate=0," + flags),
                new GuestDmaSpace(memory)));
        return attach(vf, memory);
    }

    static Nic attach(EmulatedNicVf vf, GuestMemory memory) {
        IoBus mmio = new IoBus("mmio");
        mmio.register(vf.name(), BAR, BAR0_SIZE, vf.bar0());
        return new Nic(vf, mmio, new NicDriver(vf.name(), mmio, BAR, memory, LAYOUT));
    }

    static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(2);
        }
    }

    static void copy(GuestMemory from, GuestMemory to) {
        for (GuestRegion r : from.regions()) {
            NativeMemory.copy(r.hostAddress(0), to.region(r.name()).hostAddress(0), r.size());
        }
    }

}
