package dev.ferry.vfio.uapi;

/**
 * {@code struct iommu_ioas_map} for {@code IOMMU_IOAS_MAP} on {@code /dev/iommu}: maps
 * {@code length} bytes of this process's memory at {@code user_va} into IOAS {@code ioas_id}.
 * <pre>
 *  0 size (u32) = 40       4 flags (u32): FIXED_IOVA | WRITEABLE | READABLE
 *  8 ioas_id (u32)        12 __reserved (u32, must be 0)
 * 16 user_va (u64)        24 length (u64)
 * 32 iova (u64)           in with FIXED_IOVA (the range must be unused: EEXIST); else out
 * </pre>
 * Ferry maps guest RAM at IOVA = GPA, so it always passes FIXED_IOVA, readable and writeable.
 */
public final class IommuIoasMap extends VfioStruct {
    public static final int SIZE = 40;
    public static final int SIZE_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int IOAS_ID_OFFSET = 8;
    public static final int RESERVED_OFFSET = 12;
    public static final int USER_VA_OFFSET = 16;
    public static final int LENGTH_OFFSET = 24;
    public static final int IOVA_OFFSET = 32;

    public IommuIoasMap() {
        super(SIZE, SIZE);
    }

    /** Maps {@code [userVa, userVa + length)} at exactly {@code iova}, for device reads and writes. */
    public void prepareFixed(int ioasId, long userVa, long length, long iova) {
        if (length <= 0 || userVa == 0) {
            throw new IllegalArgumentException("empty mapping (length " + length + ") or null user_va");
        }
        setArgsz(SIZE);
        clearAfterArgsz();
        u32(FLAGS_OFFSET, IommufdIoctls.IOMMU_IOAS_MAP_FIXED_IOVA | IommufdIoctls.IOMMU_IOAS_MAP_WRITEABLE
                | IommufdIoctls.IOMMU_IOAS_MAP_READABLE);
        u32(IOAS_ID_OFFSET, ioasId);
        u64(USER_VA_OFFSET, userVa);
        u64(LENGTH_OFFSET, length);
        u64(IOVA_OFFSET, iova);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public int ioasId() {
        return u32(IOAS_ID_OFFSET);
    }

    public long userVa() {
        return u64(USER_VA_OFFSET);
    }

    public long length() {
        return u64(LENGTH_OFFSET);
    }

    /** The IOVA the mapping was placed at. */
    public long iova() {
        return u64(IOVA_OFFSET);
    }
}
