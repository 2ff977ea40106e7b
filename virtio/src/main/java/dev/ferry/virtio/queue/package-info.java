/**
 * Split virtqueues (virtio 1.x, split-ring.tex) over guest memory, both sides of them.
 *
 * <pre>
 *   device side (a device model, on its event-loop thread)     driver side (a guest, or Ferry's soft guest)
 *   SplitVirtqueue  pop → DescriptorChain → push/publish   ⇄    DriverQueue  add / kickNeeded / pollUsed
 *                   ChainReader / ChainWriter (payloads)
 *                   restore / LoadedQueue (migration)
 * </pre>
 *
 * The byte layout is drawn once, in {@link dev.ferry.virtio.queue.SplitRing}. Every access goes
 * through {@link dev.ferry.core.memory.DeviceMemory}: bounds-checked against guest RAM, with
 * acquire/release ordering for the ring indices, and every write — device or soft guest — in the
 * VMM's write log, so migration sees used-ring and payload writes. Everything the driver writes is
 * hostile to the device side: a protocol violation is a
 * {@link dev.ferry.virtio.queue.VirtqueueError} naming the queue and the fault, never a crash, a
 * hang or a write outside RAM.
 */
package dev.ferry.virtio.queue;
