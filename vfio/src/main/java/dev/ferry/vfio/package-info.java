/**
 * VFIO passthrough: the kernel uAPI, the v2 migration state machine, QEMU's handler sequence, an
 * emulated SR-IOV VF and the vendor check. Not built yet: see the open issues.
 */
package dev.ferry.vfio;
