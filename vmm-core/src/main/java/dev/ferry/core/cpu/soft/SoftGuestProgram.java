package dev.ferry.core.cpu.soft;

/**
 * Guest code beside the soft engine's page-dirtying vCPUs: a device driver that a real guest would
 * run on a vCPU (Ferry's soft virtio drivers). The engine runs each program on its own thread
 * ({@code ferry-vcpu-<name>}) under the same run-state protocol as the vCPUs: {@link #runSlice}
 * is called again and again while the VM runs and never while it is paused, so a paused VM's
 * guest code touches neither guest memory nor device registers.
 *
 * <p>A program keeps everything it needs between slices in guest memory, as guest code does: on
 * a migration destination a fresh program object finds its state there. Java fields may cache
 * it, but must be reloadable from guest memory on the first slice.
 */
@FunctionalInterface
public interface SoftGuestProgram {
    /**
     * Does a bounded piece of work and returns; blocking inside is bounded too (a few
     * milliseconds, e.g. waiting for an interrupt with a timeout), so a pause is acknowledged
     * promptly. Runs on the program's thread only.
     */
    void runSlice() throws InterruptedException;
}
