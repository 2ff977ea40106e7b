package dev.ferry.core.migration;

/**
 * Save order. Devices that quiesce DMA (VFIO, vhost-user) come before RAM so that their dirty
 * pages are in RAM's final pass; vCPU state comes last, as in QEMU.
 */
public final class MigrationPriority {
    public static final int DMA_DEVICE = 300;
    public static final int DEVICE = 200;
    public static final int RAM = 100;
    public static final int CPU = 0;

    private MigrationPriority() {
    }
}
