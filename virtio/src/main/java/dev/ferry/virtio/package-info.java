/**
 * virtio devices: split virtqueues in guest memory, the virtio-mmio transport, and the
 * virtio-net, virtio-blk and virtio-balloon models. Each device's state is a
 * {@link dev.ferry.core.migration.VmStateDescription}. Not built yet: see the open issues.
 */
package dev.ferry.virtio;
