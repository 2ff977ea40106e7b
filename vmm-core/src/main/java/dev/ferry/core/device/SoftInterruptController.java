package dev.ferry.core.device;

import dev.ferry.core.migration.VmStateDescription;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The soft engine's interrupt controller: {@value #GSIS} level-triggered inputs folded into one
 * pending mask that the soft guest's driver threads take interrupts from, the way a CPU with
 * interrupts enabled takes them from its local APIC. A line that is raised stays pending until
 * its device lowers it (after the driver acknowledged at the device), exactly like a level
 * interrupt whose handler has not yet cleared the cause.
 *
 * <p>Its state is the pending mask; it migrates as section {@value #IDSTR} so a line raised at
 * switchover is raised on the destination before any device or driver runs there. Devices
 * re-assert their own lines from their migrated state too; the two agree by construction.
 *
 * <p>Thread-safe: devices raise and lower from their threads, drivers wait on theirs.
 */
public final class SoftInterruptController implements InterruptController {
    public static final String IDSTR = "soft-irqchip";
    public static final int GSIS = 24;
    /** GSIs below this belong to legacy platform devices, as on a PC. */
    public static final int FIRST_DEVICE_GSI = 5;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final String[] owners = new String[GSIS];
    private int pending;
    private long raises;

    public static final VmStateDescription<SoftInterruptController> VMSTATE =
            VmStateDescription.<SoftInterruptController>builder("soft-irqchip", 1)
                    .u32("pending", SoftInterruptController::pendingMask, (c, v) -> c.loadPending(v))
                    .build();

    @Override
    public String name() {
        return "soft";
    }

    @Override
    public int firstDeviceGsi() {
        return FIRST_DEVICE_GSI;
    }

    @Override
    public int gsiCount() {
        return GSIS;
    }

    @Override
    public InterruptLine claim(int gsi, String owner) {
        if (gsi < FIRST_DEVICE_GSI || gsi >= GSIS) {
            throw new IllegalArgumentException("soft irqchip: GSI " + gsi + " for " + owner + " outside "
                    + FIRST_DEVICE_GSI + ".." + (GSIS - 1));
        }
        lock.lock();
        try {
            if (owners[gsi] != null) {
                throw new IllegalArgumentException("soft irqchip: GSI " + gsi + " for " + owner + " is already "
                        + owners[gsi] + "'s");
            }
            owners[gsi] = owner;
        } finally {
            lock.unlock();
        }
        return new Line(gsi);
    }

    /** The GSIs raised now, bit {@code gsi} set for each. */
    public int pendingMask() {
        lock.lock();
        try {
            return pending;
        } finally {
            lock.unlock();
        }
    }

    /** How many times any line went from low to high: the interrupts a driver could have taken. */
    public long raiseCount() {
        lock.lock();
        try {
            return raises;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Waits until some line in {@code mask} is raised or {@code timeout} passes; returns the
     * pending lines of {@code mask} (0 on timeout). A driver thread's "sti; hlt".
     */
    public int await(int mask, long timeout, TimeUnit unit) throws InterruptedException {
        long nanos = unit.toNanos(timeout);
        lock.lock();
        try {
            while ((pending & mask) == 0 && nanos > 0) {
                nanos = changed.awaitNanos(nanos);
            }
            return pending & mask;
        } finally {
            lock.unlock();
        }
    }

    private void loadPending(int v) {
        int unknown = v & ~((1 << GSIS) - 1);
        if (unknown != 0) {
            throw new IllegalArgumentException("pending mask 0x" + Integer.toHexString(v) + " names GSIs beyond "
                    + (GSIS - 1));
        }
        lock.lock();
        try {
            pending = v;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private final class Line implements InterruptLine {
        private final int gsi;

        Line(int gsi) {
            this.gsi = gsi;
        }

        @Override
        public int gsi() {
            return gsi;
        }

        @Override
        public void raise() {
            lock.lock();
            try {
                if ((pending & (1 << gsi)) == 0) {
                    pending |= 1 << gsi;
                    raises++;
                    changed.signalAll();
                }
            } finally {
                lock.unlock();
            }
        }

        @Override
        public void lower() {
            lock.lock();
            try {
                pending &= ~(1 << gsi);
            } finally {
                lock.unlock();
            }
        }

        @Override
        public boolean isRaised() {
            return (pendingMask() & (1 << gsi)) != 0;
        }

        @Override
        public String toString() {
            return "soft irqchip GSI " + gsi;
        }
    }

}
