/**
 * virtio devices on the virtio-mmio transport (version 2).
 *
 * <ul>
 *   <li>{@link dev.ferry.virtio.VirtioMmio} — the transport and the state every virtio device
 *       shares (status, features, queue registers, interrupt status, reset); its migration state is
 *       QEMU's {@code virtio} field ({@code VirtioState}).</li>
 *   <li>{@link dev.ferry.virtio.VirtioDeviceModel} — the device-specific half a new device implements.</li>
 *   <li>{@link dev.ferry.virtio.VirtioMmioDevice} — a model on a machine, as a config device.</li>
 *   <li>{@code queue} — split virtqueues, device and driver side; {@code blk} — virtio-blk;
 *       {@code guest} — Ferry's guest drivers for the soft engine and their verifiers.</li>
 * </ul>
 */
package dev.ferry.virtio;
