package dev.ferry.vfio.uapi;

import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_IRQ_SET_ACTION_MASK;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_IRQ_SET_ACTION_TRIGGER;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_IRQ_SET_ACTION_UNMASK;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_IRQ_SET_DATA_BOOL;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_IRQ_SET_DATA_EVENTFD;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_IRQ_SET_DATA_NONE;

/**
 * {@code struct vfio_irq_set} for {@code VFIO_DEVICE_SET_IRQS} on a device fd, with room for
 * {@code capacity} vectors of data:
 * <pre>
 *  0 argsz (u32) = 20 + data bytes   4 flags (u32): one DATA_* | one ACTION_*
 *  8 index (u32)  12 start (u32)  16 count (u32)
 * 20 data[]: count × s32 eventfd (DATA_EVENTFD, -1 = unassign) or count × u8 bool (DATA_BOOL);
 *            nothing for DATA_NONE
 * </pre>
 * {@code flags = DATA_NONE | ACTION_TRIGGER, count = 0} disables the whole index.
 */
public final class VfioIrqSet extends VfioStruct {
    public static final int SIZE = 20;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int INDEX_OFFSET = 8;
    public static final int START_OFFSET = 12;
    public static final int COUNT_OFFSET = 16;
    public static final int DATA_OFFSET = 20;

    private final int capacity;

    /** Room for {@code capacity} eventfds (or bools) after the header. */
    public VfioIrqSet(int capacity) {
        super(SIZE + 4 * checkCapacity(capacity), SIZE);
        this.capacity = capacity;
    }

    public int capacity() {
        return capacity;
    }

    /** {@code action} on vectors {@code start .. start+fds.length-1} bound to {@code fds}. */
    public void prepareEventfds(int index, int start, int action, int... fds) {
        checkCount(fds.length);
        header(SIZE + 4 * fds.length, VFIO_IRQ_SET_DATA_EVENTFD | checkAction(action), index, start, fds.length);
        for (int i = 0; i < fds.length; i++) {
            u32(DATA_OFFSET + 4 * i, fds[i]);
        }
    }

    /** {@code action} on the vectors whose entry is true, from {@code start}. */
    public void prepareBools(int index, int start, int action, boolean... on) {
        checkCount(on.length);
        header(SIZE + on.length, VFIO_IRQ_SET_DATA_BOOL | checkAction(action), index, start, on.length);
        for (int i = 0; i < on.length; i++) {
            u8(DATA_OFFSET + i, on[i] ? 1 : 0);
        }
    }

    /** {@code action} on {@code count} vectors from {@code start}, no data. */
    public void prepareNone(int index, int start, int count, int action) {
        if (count < 0) {
            throw new IllegalArgumentException("count " + count + " is negative");
        }
        header(SIZE, VFIO_IRQ_SET_DATA_NONE | checkAction(action), index, start, count);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public int index() {
        return u32(INDEX_OFFSET);
    }

    public int start() {
        return u32(START_OFFSET);
    }

    public int count() {
        return u32(COUNT_OFFSET);
    }

    /** Entry {@code i} of an eventfd data array. */
    public int eventfd(int i) {
        if (i < 0 || i >= capacity) {
            throw new IndexOutOfBoundsException("data[" + i + "] outside 0.." + (capacity - 1));
        }
        return u32(DATA_OFFSET + 4 * i);
    }

    private void header(int argsz, int flags, int index, int start, int count) {
        setArgsz(argsz);
        clearAfterArgsz();
        u32(FLAGS_OFFSET, flags);
        u32(INDEX_OFFSET, index);
        u32(START_OFFSET, start);
        u32(COUNT_OFFSET, count);
    }

    private void checkCount(int n) {
        if (n > capacity) {
            throw new IllegalArgumentException(n + " vectors do not fit the capacity of " + capacity);
        }
    }

    private static int checkAction(int action) {
        if (action != VFIO_IRQ_SET_ACTION_MASK && action != VFIO_IRQ_SET_ACTION_UNMASK
                && action != VFIO_IRQ_SET_ACTION_TRIGGER) {
            throw new IllegalArgumentException("action must be one VFIO_IRQ_SET_ACTION_*, not 0x"
                    + Integer.toHexString(action));
        }
        return action;
    }

    private static int checkCapacity(int capacity) {
        if (capacity < 0 || capacity > 2048) {
            throw new IllegalArgumentException("vector capacity " + capacity + " outside 0..2048 (the MSI-X limit)");
        }
        return capacity;
    }
}
