/**
 * The VFIO uAPI, bottom layer: numbers and struct layouts exactly as {@code <linux/vfio.h>}
 * defines them (x86-64), and nothing else — no fds, no policy beyond what the kernel itself
 * rejects. The VFIO counterpart of {@code dev.ferry.core.cpu.kvm.bindings}.
 *
 * <ul>
 *   <li>{@link dev.ferry.vfio.uapi.VfioIoctls} — ioctl numbers and the flags and indices inside
 *       their structs; {@link dev.ferry.vfio.uapi.VfioDeviceState} — the v2 migration states and
 *       the capability flags each needs.</li>
 *   <li>Flyweights over off-heap memory ({@link dev.ferry.vfio.uapi.VfioStruct}), each with
 *       {@code SIZE}, field offsets as constants, its byte layout drawn in its Javadoc, and
 *       {@code prepare…} builders that set {@code argsz}: the {@code VFIO_DEVICE_FEATURE} buffer
 *       {@code VfioDeviceFeature} and its payloads ({@code …Migration}, {@code …MigState},
 *       {@code …MigDataSize}, {@code …DmaLoggingControl} with its ranges,
 *       {@code …DmaLoggingReport}); {@code VfioPrecopyInfo} (on the data fd);
 *       {@code VfioDeviceInfo}, {@code VfioRegionInfo}, {@code VfioIrqInfo}, {@code VfioIrqSet}.</li>
 *   <li>Opening a device: the group/container calls ({@code VfioGroupStatus},
 *       {@code VfioIommuType1DmaMap}, {@code VfioIommuType1DmaUnmap}) and the device cdev calls
 *       ({@code VfioDeviceBindIommufd}, {@code VfioDeviceAttachIommufdPt}) with the iommufd ones
 *       of {@code <linux/iommufd.h>} ({@link dev.ferry.vfio.uapi.IommufdIoctls},
 *       {@code IommuIoasAlloc}, {@code IommuIoasMap}, {@code IommuIoasUnmap}).</li>
 * </ul>
 * {@code VfioHeaderProbeTest} compiles {@code probes/vfio_uapi.c} against the host's header and
 * checks every public constant here; the PRE_COPY-era additions (kernel 6.2+), the cdev calls
 * (6.6+) and iommufd (6.2+) that an older header lacks are checked against the reference values
 * recorded in that test instead.
 */
package dev.ferry.vfio.uapi;
