package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_irq_routing} with its {@code struct kvm_irq_routing_entry} array
 * (KVM_SET_GSI_ROUTING), allocated for a fixed capacity:
 * <pre>
 *  0 nr (u32)  4 flags (u32, zero)
 *  8 entries[capacity], 48 bytes each:
 *      +0 gsi (u32)  +4 type (u32)  +8 flags (u32)  +12 pad (u32)
 *      +16 u (32-byte union); for type KVM_IRQ_ROUTING_IRQCHIP: +16 irqchip (u32)  +20 pin (u32)
 * </pre>
 * KVM_SET_GSI_ROUTING replaces the VM's whole table with the {@code nr} entries; a GSI may appear
 * more than once (the default table routes GSI 0-15 to both a PIC and the IOAPIC). Only the
 * irqchip member of the union has accessors; MSI and other route types are not bound yet.
 *
 * <p>{@link #toBytes()} saves the header and the {@code nr} entries in use.
 */
public final class KvmIrqRouting extends KvmStruct {
    public static final int SIZE = 8;
    public static final int NR_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int ENTRIES_OFFSET = 8;
    /** {@code sizeof(struct kvm_irq_routing_entry)}. */
    public static final int ENTRY_SIZE = 48;
    public static final int ENTRY_GSI_OFFSET = 0;
    public static final int ENTRY_TYPE_OFFSET = 4;
    public static final int ENTRY_FLAGS_OFFSET = 8;
    public static final int ENTRY_U_OFFSET = 16;
    public static final int ENTRY_IRQCHIP_IRQCHIP_OFFSET = 16;
    public static final int ENTRY_IRQCHIP_PIN_OFFSET = 20;
    /** KVM's KVM_MAX_IRQ_ROUTES (not in the uAPI header): more entries are refused with EINVAL. */
    static final int MAX_ROUTES = 4096;

    private final int capacity;

    public KvmIrqRouting(int capacity) {
        super(SIZE + ENTRY_SIZE * checkCapacity(capacity));
        this.capacity = capacity;
    }

    public int capacity() {
        return capacity;
    }

    public int nr() {
        return u32(NR_OFFSET);
    }

    public void setNr(int n) {
        if (n < 0 || n > capacity) {
            throw new IllegalArgumentException("nr " + n + " outside 0.." + capacity);
        }
        u32(NR_OFFSET, n);
    }

    public int gsi(int i) {
        return u32(entry(i) + ENTRY_GSI_OFFSET);
    }

    public int type(int i) {
        return u32(entry(i) + ENTRY_TYPE_OFFSET);
    }

    /** The irqchip member of entry {@code i}'s union (meaningful for KVM_IRQ_ROUTING_IRQCHIP). */
    public int irqchip(int i) {
        return u32(entry(i) + ENTRY_IRQCHIP_IRQCHIP_OFFSET);
    }

    public int pin(int i) {
        return u32(entry(i) + ENTRY_IRQCHIP_PIN_OFFSET);
    }

    /** Entry {@code i} routes {@code gsi} to {@code pin} of {@code irqchip} (a KVM_IRQCHIP_* id). */
    public void setIrqchip(int i, int gsi, int irqchip, int pin) {
        int at = entry(i);
        for (int b = 0; b < ENTRY_SIZE; b += 8) {
            u64(at + b, 0);
        }
        u32(at + ENTRY_GSI_OFFSET, gsi);
        u32(at + ENTRY_TYPE_OFFSET, KvmConstants.KVM_IRQ_ROUTING_IRQCHIP);
        u32(at + ENTRY_IRQCHIP_IRQCHIP_OFFSET, irqchip);
        u32(at + ENTRY_IRQCHIP_PIN_OFFSET, pin);
    }

    @Override
    public int byteLength() {
        return SIZE + ENTRY_SIZE * Math.min(Math.max(nr(), 0), capacity);
    }

    @Override
    protected void checkLoadable(byte[] b) {
        VariableLength.check(this, b, SIZE, ENTRY_SIZE, capacity, NR_OFFSET);
    }

    private int entry(int i) {
        return ENTRIES_OFFSET + ENTRY_SIZE * checkIndex(i, capacity, "entries");
    }

    private static int checkCapacity(int capacity) {
        if (capacity < 0 || capacity > MAX_ROUTES) {
            throw new IllegalArgumentException("routing capacity " + capacity + " outside 0.." + MAX_ROUTES);
        }
        return capacity;
    }
}
