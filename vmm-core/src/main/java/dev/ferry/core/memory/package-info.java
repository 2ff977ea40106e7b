/**
 * Guest RAM and its dirty tracking.
 *
 * <ul>
 *   <li>{@link dev.ferry.core.memory.GuestMemory} — memfd-backed regions by guest-physical address,
 *       owned by the machine; the migration engine and vCPU engines use it directly.</li>
 *   <li>{@link dev.ferry.core.memory.DeviceMemory} — <b>the view a device gets</b>: bounds-checked,
 *       little-endian, acquire/release accessors for ring indices, a full fence, and file I/O
 *       straight between an image and guest pages. It has no host address and no unlogged write:
 *       every write lands in the VMM write log, so a device write can never be missing from a
 *       migration's dirty pages.</li>
 *   <li>{@link dev.ferry.core.memory.DirtyBitmap}, {@link dev.ferry.core.memory.DirtyLogSource} —
 *       one bit per 4 KiB page; anything that writes guest memory outside the VMM's view (KVM, a
 *       VFIO device's DMA, a vhost-user back-end) reports its pages through a source.</li>
 *   <li>{@link dev.ferry.core.memory.Gpa}, {@link dev.ferry.core.memory.HostAddress},
 *       {@link dev.ferry.core.memory.Iova} — address kinds that cannot be mixed up.</li>
 * </ul>
 */
package dev.ferry.core.memory;
