package dev.ferry.virtio;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;

import java.io.IOException;

/**
 * The device-specific half of a virtio device (virtio-blk, -net, -balloon): what it offers, its
 * config space, and what it does with its queues. The transport ({@link VirtioMmio}) owns
 * everything the specification makes common — status, feature negotiation, queue registers,
 * interrupt status, reset, the generic migration state — and calls in here.
 *
 * <h2>Threads</h2>
 * {@link #start}, {@link #queueNotified}, {@link #quiesce}, {@link #reset} and the device's own
 * completions run on the machine's device event loop; {@link #config} and {@link #writeConfig}
 * on the vCPU thread of the guest access (serialized by the transport); {@link #save} and
 * {@link #load} on the migration thread with the VM stopped and the device quiesced.
 */
public interface VirtioDeviceModel extends AutoCloseable {
    /** QEMU's name for the device and its state description, e.g. {@code "virtio-blk"}. */
    String name();

    /** The virtio device ID ({@link Virtio#ID_BLOCK}, ...). */
    int deviceId();

    /** The version of the device's state description (QEMU: virtio-blk 2, virtio-net 11). */
    int stateVersion();

    /** Device-specific feature bits offered; the transport adds VERSION_1, EVENT_IDX and INDIRECT_DESC. */
    long features();

    int queueCount();

    /** The largest size the driver may give each queue (QueueNumMax); a power of two. */
    int queueMaxSize();

    /** The config space as the driver reads it now, little-endian; its length is the config size. */
    byte[] config();

    /**
     * The config space a migration stream carries: the device checks what must agree with its
     * own (a disk's capacity) and takes what the driver set (a disk's writeback mode). Called
     * before any other loaded state is applied; a refusal leaves the device unchanged.
     */
    void restoreConfig(byte[] config) throws MigrationException;

    /** A driver write into the config space; devices without writable fields ignore it. */
    void writeConfig(int offset, int size, long value);

    /**
     * The driver set DRIVER_OK (or a started device's VM starts): the negotiated features and
     * ready queues are in {@code context}; serve from the next {@link #queueNotified}. Loop thread,
     * possibly as a task while the loop is still paused and before the VM's start is certain (a
     * start can be rolled back by {@link #quiesce}): touch nothing outside the device here — no
     * image I/O, no retries — and leave that to the first queue notification, which the transport
     * raises for every ready queue once the VM runs.
     */
    void start(VirtioContext context);

    /** The driver kicked queue {@code queue}. Loop thread; only between start and quiesce/reset. */
    void queueNotified(int queue);

    /**
     * The VM is stopping: finish or park every request in flight, so that from return on the
     * device writes no guest memory and raises no interrupt until {@link #start} again. Requests
     * that complete here are pushed to their used rings (and interrupt) as part of stopping, as
     * QEMU completes drained requests. Loop thread; may block on the device's I/O.
     */
    void quiesce();

    /** The driver reset the device (status 0): drop all queue-related state. Loop thread. */
    void reset();

    /** The device part of QEMU's {@code virtio} field ({@code VirtioDeviceClass.save}). */
    void save(SaveStream out) throws IOException;

    /**
     * Reads what {@link #save} wrote, before the transport's post-load checks: the device keeps
     * it aside and changes nothing, since the load may still be refused.
     */
    void load(LoadStream in, int version) throws IOException, MigrationException;

    /**
     * The whole state {@link #load} was part of checked out (after {@link #restoreConfig}): what
     * {@code load} read becomes the device's. Not called for a refused load.
     */
    void commitLoad();

    /**
     * The queues are served outside the VMM (a vhost-user back-end): the transport leaves the
     * queues' kick eventfds alone — the model hands them to the back-end
     * ({@link VirtioContext#kickFd}) — and the model raises the used-buffer interrupt itself when
     * the back-end signals it ({@link VirtioContext#interruptQueue}). Asked once, when the
     * transport is built.
     */
    default boolean externalDataPlane() {
        return false;
    }

    /** What the device reports in {@code x-ferry-devices} and the demo: requests, bytes, ... */
    void describe(java.util.Map<String, Object> into);

    @Override
    void close();
}
