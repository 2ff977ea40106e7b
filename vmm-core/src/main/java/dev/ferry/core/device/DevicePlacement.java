package dev.ferry.core.device;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;

import java.util.Map;

/**
 * Hands out where a machine's config devices live: register windows from {@link #MMIO_BASE} up, in
 * 4 KiB steps, and interrupt lines from the controller's first device GSI up, in the order devices
 * are created. A migration's source and destination create the same config's devices in the same
 * order, so each device sits at the same address and GSI on both — the migrated state (ring
 * addresses the guest programmed, a pending interrupt) means the same thing there.
 *
 * <p>Used while the machine is built, on one thread.
 */
public final class DevicePlacement {
    /** Config devices' register windows start here (below the 0xFE00_0000 VF BARs, as on a PC's MMIO hole). */
    public static final long MMIO_BASE = 0xD000_0000L;
    private static final long MMIO_END = 0xFE00_0000L;

    /** Outbound port: a device asks the VMM to stop the VM (see {@link DeviceContext#requestStop}). */
    @FunctionalInterface
    public interface StopRequests {
        void requestStop(String device, RunState state, String event, Map<String, Object> data);
    }

    private final Machine machine;
    private final boolean incoming;
    private final StopRequests stops;
    private long nextMmio = MMIO_BASE;
    private int nextGsi;

    public DevicePlacement(Machine machine, boolean incoming, StopRequests stops) {
        this.machine = machine;
        this.incoming = incoming;
        this.stops = stops;
        this.nextGsi = -1;
    }

    /** The context the device {@code id} is built in. */
    public DeviceContext contextFor(String id) {
        return new DeviceContext() {
            @Override
            public Machine machine() {
                return machine;
            }

            @Override
            public String id() {
                return id;
            }

            @Override
            public boolean incoming() {
                return incoming;
            }

            @Override
            public long allocateMmio(long size) {
                long rounded = (size + 0xfff) & ~0xfffL;
                if (nextMmio + rounded > MMIO_END) {
                    throw new IllegalStateException(id + ": no MMIO space left below 0x" + Long.toHexString(MMIO_END));
                }
                long base = nextMmio;
                nextMmio += rounded;
                return base;
            }

            @Override
            public InterruptLine allocateInterrupt() {
                InterruptController ic = machine.interrupts();
                if (nextGsi < 0) {
                    nextGsi = ic.firstDeviceGsi();
                }
                if (nextGsi >= ic.gsiCount()) {
                    throw new IllegalStateException(id + ": all " + ic.gsiCount() + " interrupt lines are taken");
                }
                return ic.claim(nextGsi++, id);
            }

            @Override
            public void requestStop(RunState state, String event, Map<String, Object> data) {
                stops.requestStop(id, state, event, data);
            }
        };
    }
}
