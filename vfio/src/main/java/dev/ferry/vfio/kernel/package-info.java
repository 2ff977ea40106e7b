/**
 * VFIO devices opened through the kernel: {@link dev.ferry.vfio.kernel.KernelVfioDeviceFactory}
 * opens a device by its cdev ({@code /dev/vfio/devices/vfioN}, bound to an iommufd IOAS) or by
 * its PCI address (group and type1v2 container), maps guest RAM at IOVA = GPA, and hands back a
 * {@link dev.ferry.vfio.kernel.KernelVfioDevice} that keeps the
 * {@link dev.ferry.vfio.device.VfioDevice} contract with one ioctl per call; data fds are
 * {@link dev.ferry.vfio.kernel.KernelDataFd}s.
 *
 * <p>Every system call goes through {@link dev.ferry.vfio.kernel.VfioSyscalls}:
 * {@link dev.ferry.vfio.kernel.NativeVfioSyscalls} on a real host, and in tests a fake kernel
 * that enforces the uAPI's rules on the bytes of each call — how this layer is proven on hosts
 * without VFIO hardware.
 */
package dev.ferry.vfio.kernel;
