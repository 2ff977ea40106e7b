package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_attach_iommufd_pt} for {@code VFIO_DEVICE_ATTACH_IOMMUFD_PT} on a
 * bound device cdev fd (kernel 6.6+): the device's DMA goes through page table {@code pt_id} (an
 * IOAS, for which the kernel makes a hardware page table).
 * <pre>
 *  0 argsz (u32) = 12   4 flags (u32, 0)   8 pt_id (u32, in: the IOAS; out: the page table used)
 * </pre>
 * {@code SIZE} is the kernel's minimum ({@code offsetofend(pt_id)}), the whole struct as it was
 * introduced; newer headers append {@code u32 pasid}, read only with VFIO_DEVICE_ATTACH_PASID.
 */
public final class VfioDeviceAttachIommufdPt extends VfioStruct {
    public static final int SIZE = 12;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int PT_ID_OFFSET = 8;

    public VfioDeviceAttachIommufdPt() {
        super(SIZE, SIZE);
    }

    public void prepare(int ptId) {
        setArgsz(SIZE);
        clearAfterArgsz();
        u32(PT_ID_OFFSET, ptId);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public int ptId() {
        return u32(PT_ID_OFFSET);
    }
}
