package dev.ferry.core.machine;

/**
 * Something on a port-I/O or MMIO bus: a device's register window. {@code offset} is relative to
 * the window's base; {@code size} is 1, 2, 4 or 8 bytes; values are little-endian in the low bits.
 *
 * <p>Called on a vCPU thread (the one whose guest access trapped), possibly on several at once:
 * a device serializes its own register state.
 */
public interface BusDevice {
    long read(long offset, int size);

    void write(long offset, int size, long value);
}
