/**
 * The {@link dev.ferry.vfio.device.VfioDevice} contract: what a VFIO device offers through its
 * device fd — the MIGRATION, MIG_DEVICE_STATE, MIG_DATA_SIZE and DMA_LOGGING feature calls, the
 * migration data fd with VFIO_MIG_GET_PRECOPY_INFO, and reset — in the kernel's own terms
 * (errno values, the echoed state, ENOMSG and EOF on the data fd). Both kernel devices and the
 * emulated SR-IOV VF meet it; the migration handlers and the vendor check see only this.
 */
package dev.ferry.vfio.device;
