package dev.ferry.vfio.uapi;

import dev.ferry.core.testing.CProbe;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Checks every ioctl number, constant, struct size and field offset of {@code dev.ferry.vfio.uapi}
 * against the host's {@code <linux/vfio.h>} (probe {@code probes/vfio_uapi.c}). Each class has an
 * explicit mapping from its Java constants to probe keys: a public constant without an entry
 * fails, and so does a probed key that no mapping checks.
 *
 * <p>Where the values come from:
 * <ul>
 *   <li>the host's header, for everything it defines (on Debian 12's 6.1 headers: all ioctls but
 *       PRECOPY_INFO, all flags but PRE_COPY, states 0..5, DMA logging, every struct but the two
 *       below);</li>
 *   <li>{@link #REFERENCE} (docs {@code vfio-migration-v2.md} and the upstream header it quotes),
 *       for the 6.2 additions an older header lacks — VFIO_MIG_GET_PRECOPY_INFO,
 *       VFIO_MIGRATION_PRE_COPY, states PRE_COPY/PRE_COPY_P2P, MIG_DATA_SIZE and its payload,
 *       {@code vfio_precopy_info} — and for two kernel-internal limits no uAPI header has
 *       (LOG_MAX_RANGES, SZ_4K). When the header does define a reference key, header and
 *       reference must agree, so a wrong reference line cannot hide;</li>
 *   <li>{@link #REFERENCE} also for the device cdev calls of upstream {@code include/uapi/linux/vfio.h}
 *       (VFIO_DEVICE_BIND_IOMMUFD, _ATTACH_/_DETACH_IOMMUFD_PT and their structs, Linux 6.6) and
 *       for {@code include/uapi/linux/iommufd.h} (Linux 6.2), which a 6.1 host lacks entirely.
 *       The cdev structs grew later behind flags (a token pointer, a PASID); what is checked is
 *       their minimum size {@code minsz(...)} = offsetofend of the last field the kernel
 *       requires, which every version accepts. The container and group structs
 *       ({@code vfio_group_status}, {@code vfio_iommu_type1_dma_map/_unmap}) are in every header
 *       and are in the reference as well, as a second opinion;</li>
 *   <li>{@code sizeof(vfio_device_info)}: 24 from current headers' {@code pad} member; a header
 *       without it says 20, and then the test checks that pad starts where {@code cap_offset}
 *       ends and takes 24.</li>
 * </ul>
 */
class VfioHeaderProbeTest {
    /** Values newer than (or absent from) some hosts' header: key → value. */
    static final Map<String, Long> REFERENCE = new LinkedHashMap<>();
    /** Class → (Java constant → probe key). */
    private static final Map<Class<?>, Map<String, String>> MAPPINGS = new LinkedHashMap<>();

    static {
        REFERENCE.put("VFIO_MIG_GET_PRECOPY_INFO", 0x3B79L);
        REFERENCE.put("VFIO_MIGRATION_PRE_COPY", 1L << 2);
        REFERENCE.put("VFIO_DEVICE_STATE_PRE_COPY", 6L);
        REFERENCE.put("VFIO_DEVICE_STATE_PRE_COPY_P2P", 7L);
        REFERENCE.put("VFIO_DEVICE_FEATURE_MIG_DATA_SIZE", 9L);
        REFERENCE.put("sizeof(vfio_device_feature_mig_data_size)", 8L);
        REFERENCE.put("vfio_device_feature_mig_data_size.stop_copy_length", 0L);
        REFERENCE.put("argsz(vfio_device_feature_mig_data_size)", 16L);
        REFERENCE.put("sizeof(vfio_precopy_info)", 24L);
        REFERENCE.put("vfio_precopy_info.argsz", 0L);
        REFERENCE.put("vfio_precopy_info.flags", 4L);
        REFERENCE.put("vfio_precopy_info.initial_bytes", 8L);
        REFERENCE.put("vfio_precopy_info.dirty_bytes", 16L);
        REFERENCE.put("VFIO_DEVICE_FEATURE_DMA_LOGGING_START", 6L);
        REFERENCE.put("VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP", 7L);
        REFERENCE.put("VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT", 8L);
        REFERENCE.put("argsz(vfio_device_feature_dma_logging_report)", 40L);
        REFERENCE.put("argsz(vfio_device_feature_mig_state)", 16L);
        REFERENCE.put("VFIO_DEVICE_GET_INFO", 0x3B6BL);
        REFERENCE.put("VFIO_DEVICE_RESET", 0x3B6FL);
        REFERENCE.put("VFIO_DEVICE_FEATURE", 0x3B75L);
        REFERENCE.put("LOG_MAX_RANGES", 256L); // drivers/vfio/vfio_main.c, not uAPI
        REFERENCE.put("SZ_4K", 4096L); // minimum DMA_LOGGING_REPORT page_size, not uAPI

        // container and group: in every header since 3.6; recorded as a second opinion
        REFERENCE.put("VFIO_TYPE1_IOMMU", 1L);
        REFERENCE.put("VFIO_GROUP_UNSET_CONTAINER", 0x3B69L);
        REFERENCE.put("VFIO_IOMMU_MAP_DMA", 0x3B71L);
        REFERENCE.put("VFIO_IOMMU_UNMAP_DMA", 0x3B72L);
        REFERENCE.put("VFIO_DMA_MAP_FLAG_READ", 1L);
        REFERENCE.put("VFIO_DMA_MAP_FLAG_WRITE", 2L);
        REFERENCE.put("sizeof(vfio_group_status)", 8L);
        REFERENCE.put("sizeof(vfio_iommu_type1_dma_map)", 32L);
        REFERENCE.put("vfio_iommu_type1_dma_map.vaddr", 8L);
        REFERENCE.put("vfio_iommu_type1_dma_map.iova", 16L);
        REFERENCE.put("vfio_iommu_type1_dma_map.size", 24L);
        REFERENCE.put("sizeof(vfio_iommu_type1_dma_unmap)", 24L);
        REFERENCE.put("vfio_iommu_type1_dma_unmap.iova", 8L);
        REFERENCE.put("vfio_iommu_type1_dma_unmap.size", 16L);
        // device cdev (upstream include/uapi/linux/vfio.h, Linux 6.6)
        REFERENCE.put("VFIO_DEVICE_BIND_IOMMUFD", 0x3B76L);
        REFERENCE.put("VFIO_DEVICE_ATTACH_IOMMUFD_PT", 0x3B77L);
        REFERENCE.put("VFIO_DEVICE_DETACH_IOMMUFD_PT", 0x3B78L);
        REFERENCE.put("minsz(vfio_device_bind_iommufd)", 16L);
        REFERENCE.put("vfio_device_bind_iommufd.argsz", 0L);
        REFERENCE.put("vfio_device_bind_iommufd.flags", 4L);
        REFERENCE.put("vfio_device_bind_iommufd.iommufd", 8L);
        REFERENCE.put("vfio_device_bind_iommufd.out_devid", 12L);
        REFERENCE.put("minsz(vfio_device_attach_iommufd_pt)", 12L);
        REFERENCE.put("vfio_device_attach_iommufd_pt.argsz", 0L);
        REFERENCE.put("vfio_device_attach_iommufd_pt.flags", 4L);
        REFERENCE.put("vfio_device_attach_iommufd_pt.pt_id", 8L);
        // upstream include/uapi/linux/iommufd.h (Linux 6.2)
        REFERENCE.put("IOMMUFD_TYPE", (long) ';');
        REFERENCE.put("IOMMUFD_CMD_BASE", 0x80L);
        REFERENCE.put("IOMMU_DESTROY", 0x3B80L);
        REFERENCE.put("IOMMU_IOAS_ALLOC", 0x3B81L);
        REFERENCE.put("IOMMU_IOAS_MAP", 0x3B85L);
        REFERENCE.put("IOMMU_IOAS_UNMAP", 0x3B86L);
        REFERENCE.put("IOMMU_IOAS_MAP_FIXED_IOVA", 1L);
        REFERENCE.put("IOMMU_IOAS_MAP_WRITEABLE", 2L);
        REFERENCE.put("IOMMU_IOAS_MAP_READABLE", 4L);
        REFERENCE.put("sizeof(iommu_ioas_alloc)", 12L);
        REFERENCE.put("iommu_ioas_alloc.size", 0L);
        REFERENCE.put("iommu_ioas_alloc.flags", 4L);
        REFERENCE.put("iommu_ioas_alloc.out_ioas_id", 8L);
        REFERENCE.put("sizeof(iommu_ioas_map)", 40L);
        REFERENCE.put("iommu_ioas_map.size", 0L);
        REFERENCE.put("iommu_ioas_map.flags", 4L);
        REFERENCE.put("iommu_ioas_map.ioas_id", 8L);
        REFERENCE.put("iommu_ioas_map.__reserved", 12L);
        REFERENCE.put("iommu_ioas_map.user_va", 16L);
        REFERENCE.put("iommu_ioas_map.length", 24L);
        REFERENCE.put("iommu_ioas_map.iova", 32L);
        REFERENCE.put("sizeof(iommu_ioas_unmap)", 24L);
        REFERENCE.put("iommu_ioas_unmap.size", 0L);
        REFERENCE.put("iommu_ioas_unmap.ioas_id", 4L);
        REFERENCE.put("iommu_ioas_unmap.iova", 8L);
        REFERENCE.put("iommu_ioas_unmap.length", 16L);

        sameNames(VfioIoctls.class, "VFIO_TYPE VFIO_BASE VFIO_API_VERSION VFIO_TYPE1_IOMMU VFIO_TYPE1v2_IOMMU "
                + "VFIO_GET_API_VERSION VFIO_CHECK_EXTENSION VFIO_SET_IOMMU VFIO_IOMMU_MAP_DMA VFIO_IOMMU_UNMAP_DMA "
                + "VFIO_GROUP_GET_STATUS VFIO_GROUP_SET_CONTAINER VFIO_GROUP_UNSET_CONTAINER "
                + "VFIO_DEVICE_BIND_IOMMUFD VFIO_DEVICE_ATTACH_IOMMUFD_PT VFIO_DEVICE_DETACH_IOMMUFD_PT "
                + "VFIO_DMA_MAP_FLAG_READ VFIO_DMA_MAP_FLAG_WRITE "
                + "VFIO_GROUP_GET_DEVICE_FD VFIO_DEVICE_GET_INFO VFIO_DEVICE_GET_REGION_INFO VFIO_DEVICE_GET_IRQ_INFO "
                + "VFIO_DEVICE_SET_IRQS VFIO_DEVICE_RESET VFIO_DEVICE_FEATURE VFIO_MIG_GET_PRECOPY_INFO "
                + "VFIO_GROUP_FLAGS_VIABLE VFIO_GROUP_FLAGS_CONTAINER_SET VFIO_DEVICE_FLAGS_RESET VFIO_DEVICE_FLAGS_PCI "
                + "VFIO_DEVICE_FLAGS_CAPS VFIO_REGION_INFO_FLAG_READ VFIO_REGION_INFO_FLAG_WRITE "
                + "VFIO_REGION_INFO_FLAG_MMAP VFIO_REGION_INFO_FLAG_CAPS VFIO_IRQ_INFO_EVENTFD VFIO_IRQ_INFO_MASKABLE "
                + "VFIO_IRQ_INFO_AUTOMASKED VFIO_IRQ_INFO_NORESIZE VFIO_IRQ_SET_DATA_NONE VFIO_IRQ_SET_DATA_BOOL "
                + "VFIO_IRQ_SET_DATA_EVENTFD VFIO_IRQ_SET_ACTION_MASK VFIO_IRQ_SET_ACTION_UNMASK "
                + "VFIO_IRQ_SET_ACTION_TRIGGER VFIO_DEVICE_FEATURE_MASK VFIO_DEVICE_FEATURE_GET VFIO_DEVICE_FEATURE_SET "
                + "VFIO_DEVICE_FEATURE_PROBE VFIO_DEVICE_FEATURE_MIGRATION VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE "
                + "VFIO_DEVICE_FEATURE_DMA_LOGGING_START VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP "
                + "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT VFIO_DEVICE_FEATURE_MIG_DATA_SIZE VFIO_MIGRATION_STOP_COPY "
                + "VFIO_MIGRATION_P2P VFIO_MIGRATION_PRE_COPY");

        layout(VfioDeviceFeature.class, "vfio_device_feature", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags",
                "DATA_OFFSET data");
        payload(VfioDeviceFeatureMigration.class, "vfio_device_feature_migration", "FLAGS_OFFSET flags");
        payload(VfioDeviceFeatureMigState.class, "vfio_device_feature_mig_state",
                "DEVICE_STATE_OFFSET device_state", "DATA_FD_OFFSET data_fd");
        payload(VfioDeviceFeatureMigDataSize.class, "vfio_device_feature_mig_data_size",
                "STOP_COPY_LENGTH_OFFSET stop_copy_length");
        Map<String, String> control = payload(VfioDeviceFeatureDmaLoggingControl.class,
                "vfio_device_feature_dma_logging_control", "PAGE_SIZE_OFFSET page_size",
                "NUM_RANGES_OFFSET num_ranges", "RESERVED_OFFSET __reserved", "RANGES_OFFSET ranges");
        control.put("RANGE_SIZE", "sizeof(vfio_device_feature_dma_logging_range)");
        control.put("RANGE_IOVA_OFFSET", "vfio_device_feature_dma_logging_range.iova");
        control.put("RANGE_LENGTH_OFFSET", "vfio_device_feature_dma_logging_range.length");
        control.put("MAX_RANGES", "LOG_MAX_RANGES");
        payload(VfioDeviceFeatureDmaLoggingReport.class, "vfio_device_feature_dma_logging_report",
                "IOVA_OFFSET iova", "LENGTH_OFFSET length", "PAGE_SIZE_OFFSET page_size", "BITMAP_OFFSET bitmap")
                .put("MIN_PAGE_SIZE", "SZ_4K");
        layout(VfioPrecopyInfo.class, "vfio_precopy_info", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags",
                "INITIAL_BYTES_OFFSET initial_bytes", "DIRTY_BYTES_OFFSET dirty_bytes");
        layout(VfioDeviceInfo.class, "vfio_device_info", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags",
                "NUM_REGIONS_OFFSET num_regions", "NUM_IRQS_OFFSET num_irqs", "CAP_OFFSET_OFFSET cap_offset",
                "PAD_OFFSET cap_offset.end");
        layout(VfioRegionInfo.class, "vfio_region_info", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags",
                "INDEX_OFFSET index", "CAP_OFFSET_OFFSET cap_offset", "SIZE_OFFSET size", "OFFSET_OFFSET offset");
        layout(VfioIrqInfo.class, "vfio_irq_info", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags", "INDEX_OFFSET index",
                "COUNT_OFFSET count");
        layout(VfioGroupStatus.class, "vfio_group_status", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags");
        layout(VfioIommuType1DmaMap.class, "vfio_iommu_type1_dma_map", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags",
                "VADDR_OFFSET vaddr", "IOVA_OFFSET iova", "SIZE_OFFSET size");
        layout(VfioIommuType1DmaUnmap.class, "vfio_iommu_type1_dma_unmap", "ARGSZ_OFFSET argsz",
                "FLAGS_OFFSET flags", "IOVA_OFFSET iova", "SIZE_OFFSET size");
        layout(VfioDeviceBindIommufd.class, "vfio_device_bind_iommufd", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags",
                "IOMMUFD_OFFSET iommufd", "OUT_DEVID_OFFSET out_devid")
                .put("SIZE", "minsz(vfio_device_bind_iommufd)");
        layout(VfioDeviceAttachIommufdPt.class, "vfio_device_attach_iommufd_pt", "ARGSZ_OFFSET argsz",
                "FLAGS_OFFSET flags", "PT_ID_OFFSET pt_id")
                .put("SIZE", "minsz(vfio_device_attach_iommufd_pt)");
        sameNames(IommufdIoctls.class, "IOMMUFD_TYPE IOMMUFD_CMD_BASE IOMMU_DESTROY IOMMU_IOAS_ALLOC IOMMU_IOAS_MAP "
                + "IOMMU_IOAS_UNMAP IOMMU_IOAS_MAP_FIXED_IOVA IOMMU_IOAS_MAP_WRITEABLE IOMMU_IOAS_MAP_READABLE");
        layout(IommuIoasAlloc.class, "iommu_ioas_alloc", "SIZE_OFFSET size", "FLAGS_OFFSET flags",
                "OUT_IOAS_ID_OFFSET out_ioas_id");
        layout(IommuIoasMap.class, "iommu_ioas_map", "SIZE_OFFSET size", "FLAGS_OFFSET flags",
                "IOAS_ID_OFFSET ioas_id", "RESERVED_OFFSET __reserved", "USER_VA_OFFSET user_va",
                "LENGTH_OFFSET length", "IOVA_OFFSET iova");
        layout(IommuIoasUnmap.class, "iommu_ioas_unmap", "SIZE_OFFSET size", "IOAS_ID_OFFSET ioas_id",
                "IOVA_OFFSET iova", "LENGTH_OFFSET length");
        layout(VfioIrqSet.class, "vfio_irq_set", "ARGSZ_OFFSET argsz", "FLAGS_OFFSET flags", "INDEX_OFFSET index",
                "START_OFFSET start", "COUNT_OFFSET count", "DATA_OFFSET data");
    }

    /** Probe output merged with {@link #REFERENCE}. */
    private static Map<String, Long> values;
    /** Where each value came from: "header", "reference" or "newer header". */
    private static final Map<String, String> SOURCE = new TreeMap<>();
    /** Disagreements found while merging. */
    private static final List<String> MERGE_PROBLEMS = new ArrayList<>();
    private static Set<String> probedKeys;

    private static void sameNames(Class<?> cls, String names) {
        CProbe.sameNames(MAPPINGS, cls, names);
    }

    private static Map<String, String> layout(Class<?> cls, String struct, String... fieldMember) {
        return CProbe.layout(MAPPINGS, cls, struct, fieldMember);
    }

    /** A feature payload: also {@code ARGSZ → argsz(struct)}. */
    private static Map<String, String> payload(Class<?> cls, String struct, String... fieldMember) {
        Map<String, String> m = layout(cls, struct, fieldMember);
        m.put("ARGSZ", "argsz(" + struct + ")");
        return m;
    }

    @BeforeAll
    static void probe() {
        assumeTrue(CProbe.gccAvailable(), CProbe.NO_GCC);
        assumeTrue(CProbe.headerAvailable("linux/vfio.h"),
                "linux/vfio.h not found: the kernel's uAPI headers are needed (apt-get install linux-libc-dev)");
        Map<String, Long> probed = CProbe.runResource("/probes/vfio_uapi.c");
        probedKeys = new HashSet<>(probed.keySet());
        values = new LinkedHashMap<>(probed);
        probed.keySet().forEach(k -> SOURCE.put(k, "header"));
        REFERENCE.forEach((key, ref) -> {
            Long header = probed.get(key);
            if (header == null) {
                values.put(key, ref);
                SOURCE.put(key, "reference");
            } else if (!header.equals(ref)) {
                MERGE_PROBLEMS.add("the reference says " + key + " = " + ref + " but the host's header says " + header);
            }
        });
        long padAt = probed.get("vfio_device_info.cap_offset.end");
        if (probed.get("sizeof(vfio_device_info)") == padAt) { // header predates the pad member
            values.put("sizeof(vfio_device_info)", padAt + 4);
            SOURCE.put("sizeof(vfio_device_info)", "newer header (u32 pad after cap_offset)");
        }
        System.out.println("vfio_uapi.c values by source: " + summary());
    }

    @Test
    void everyConstantMatchesTheHeaderOrTheReference() {
        List<String> problems = new ArrayList<>(MERGE_PROBLEMS);
        MAPPINGS.forEach((cls, mapping) -> problems.addAll(CProbe.compareConstants(cls, mapping, values)));
        assertNoProblems(problems);
    }

    @Test
    void migrationStatesMatchTheEnum() {
        List<String> problems = new ArrayList<>(MERGE_PROBLEMS);
        for (VfioDeviceState s : VfioDeviceState.values()) {
            Long c = values.get("VFIO_DEVICE_STATE_" + s.name());
            if (c == null || c != s.value()) {
                problems.add("VfioDeviceState." + s + " = " + s.value() + " but VFIO_DEVICE_STATE_" + s.name() + " = "
                        + c);
            }
        }
        long states = values.keySet().stream().filter(k -> k.startsWith("VFIO_DEVICE_STATE_")).count();
        assertEquals(VfioDeviceState.values().length, states, "the header or reference has states the enum lacks");
        assertNoProblems(problems);
    }

    @Test
    void everyUapiClassIsMapped() throws Exception {
        Set<String> unmapped = new TreeSet<>();
        for (Class<?> cls : CProbe.classesBeside(VfioIoctls.class)) {
            if (!cls.isEnum() && !MAPPINGS.containsKey(cls) && CProbe.hasPublicConstants(cls)) {
                unmapped.add(cls.getSimpleName());
            }
        }
        assertTrue(unmapped.isEmpty(), "uapi classes with constants no probe checks: " + unmapped);
    }

    @Test
    void everyProbedValueIsChecked() {
        Set<String> checked = new HashSet<>();
        MAPPINGS.values().forEach(m -> checked.addAll(m.values()));
        for (VfioDeviceState s : VfioDeviceState.values()) {
            checked.add("VFIO_DEVICE_STATE_" + s.name());
        }
        Set<String> unchecked = new TreeSet<>(probedKeys);
        unchecked.addAll(REFERENCE.keySet());
        unchecked.removeAll(checked);
        assertTrue(unchecked.isEmpty(), "values no mapping checks: " + unchecked);
    }

    private static String summary() {
        Map<String, List<String>> bySource = new TreeMap<>();
        SOURCE.forEach((k, src) -> {
            if (!src.equals("header")) {
                bySource.computeIfAbsent(src, x -> new ArrayList<>()).add(k);
            }
        });
        long header = SOURCE.values().stream().filter("header"::equals).count();
        return header + " from the host's header; " + bySource;
    }

    private static void assertNoProblems(List<String> problems) {
        assertTrue(problems.isEmpty(), () -> problems.size() + " mismatch(es) with <linux/vfio.h> or the reference:\n  "
                + String.join("\n  ", problems));
    }
}
