package dev.ferry.virtio;

import dev.ferry.core.device.Device;
import dev.ferry.core.device.DeviceContext;
import dev.ferry.core.machine.Machine;

import java.util.Map;

/**
 * A virtio device on a machine: its model behind a {@link VirtioMmio} transport placed in a free
 * MMIO window with its own interrupt line, its state registered for migration and its
 * VM-change-state handler installed. Closing it takes it off the bus and closes the model.
 */
public final class VirtioMmioDevice implements Device {
    /** The VM-change-state priority of virtio devices: they stop after VFIO devices, start before them. */
    public static final int VM_STATE_PRIORITY = 100;
    private final String kind;
    private final VirtioMmio transport;
    private final Machine machine;

    private VirtioMmioDevice(String kind, VirtioMmio transport, Machine machine) {
        this.kind = kind;
        this.transport = transport;
        this.machine = machine;
    }

    /** Places {@code model} on the machine of {@code context}. The model is closed if this fails. */
    public static VirtioMmioDevice attach(DeviceContext context, String kind, VirtioDeviceModel model) {
        Machine m = context.machine();
        VirtioMmio t;
        try {
            long base = context.allocateMmio(VirtioMmio.WINDOW);
            t = new VirtioMmio(context.id(), base, model, m.deviceMemory(), m.eventLoop(), context.allocateInterrupt());
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
        try {
            m.mmio().register(context.id() + " (" + kind + ")", t.base(), VirtioMmio.WINDOW, t);
            t.registerMigration(m.migration());
            m.addVmChangeStateHandler(t, VM_STATE_PRIORITY);
        } catch (RuntimeException e) {
            m.mmio().unregister(t);
            m.migration().unregister(t.idstr(), 0);
            t.close();
            throw e;
        }
        return new VirtioMmioDevice(kind, t, m);
    }

    public VirtioMmio transport() {
        return transport;
    }

    @Override
    public String id() {
        return transport.name();
    }

    @Override
    public String kind() {
        return kind;
    }

    @Override
    public void describe(Map<String, Object> into) {
        transport.describe(into);
    }

    @Override
    public void close() {
        machine.mmio().unregister(transport);
        machine.removeVmChangeStateHandler(transport);
        transport.close();
    }
}
