package dev.ferry.vmm.run;

import java.util.EnumMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Debug hold points ({@code x-ferry-hold}): the outgoing migration thread stops at an armed point
 * — during setup, in the first iteration, or right after the VM stopped for switchover — until
 * {@code x-ferry-release} or a cancel lets it go. They let a test or the demo act (cancel, kill
 * the destination) at a precise phase instead of racing the migration. One-shot; disarmed by
 * default, so a migration never waits unless asked to.
 */
final class HoldPoints {
    enum Phase { SETUP, ACTIVE, DEVICE }

    private final Map<Phase, Boolean> armed = new EnumMap<>(Phase.class);
    private final Consumer<Phase> reached;
    private Phase holding;
    private boolean released;

    HoldPoints(Consumer<Phase> reached) {
        this.reached = reached;
    }

    synchronized void arm(Phase p) {
        armed.put(p, true);
    }

    synchronized void disarmAll() {
        armed.clear();
        released = true;
        notifyAll();
    }

    /** Called by the migration thread at {@code p}; blocks while armed and not released. */
    void at(Phase p) {
        synchronized (this) {
            if (!Boolean.TRUE.equals(armed.remove(p))) {
                return;
            }
            holding = p;
            released = false;
        }
        reached.accept(p);
        synchronized (this) {
            try {
                while (!released) {
                    wait();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                holding = null;
            }
        }
    }

    synchronized Phase holding() {
        return holding;
    }

    synchronized void release() {
        released = true;
        notifyAll();
    }
}
