package dev.ferry.core.cpu.kvm.bindings;

import dev.ferry.core.sys.NativeMemory;

/**
 * {@code struct kvm_run}: the page a vCPU fd maps at offset 0, shared with KVM. The VMM writes
 * the "in" fields before KVM_RUN and reads why the vCPU exited afterwards. A view: the vCPU owns
 * the mapping, which spans {@code KVM_GET_VCPU_MMAP_SIZE} bytes (the PIO data page follows).
 * <pre>
 *   0 request_interrupt_window (u8)   1 immediate_exit (u8)   2 padding1[6]
 *   8 exit_reason (u32)  12 ready_for_interrupt_injection (u8)  13 if_flag (u8)  14 flags (u16)
 *  16 cr8 (u64)  24 apic_base (u64)
 *  32 exit union (256 bytes), by exit_reason:
 *     KVM_EXIT_UNKNOWN        32 hardware_exit_reason (u64)
 *     KVM_EXIT_FAIL_ENTRY     32 hardware_entry_failure_reason (u64)  40 cpu (u32)
 *     KVM_EXIT_EXCEPTION      32 exception (u32)  36 error_code (u32)
 *     KVM_EXIT_IO             32 direction (u8)  33 size (u8)  34 port (u16)  36 count (u32)
 *                             40 data_offset (u64, from the start of kvm_run; count*size bytes)
 *     KVM_EXIT_MMIO           32 phys_addr (u64)  40 data[8]  48 len (u32)  52 is_write (u8)
 *     KVM_EXIT_INTERNAL_ERROR 32 suberror (u32)  36 ndata (u32)  40 data[16] (u64)
 *     KVM_EXIT_SYSTEM_EVENT   32 type (u32)  36 ndata (u32)  40 data[16] (u64; data[0] = flags)
 * 288 kvm_valid_regs (u64)  296 kvm_dirty_regs (u64)  304 s (sync regs, 2048 bytes)
 * 2352 end of struct kvm_run
 * </pre>
 * Read by the vCPU thread between KVM_RUN calls; {@link #setImmediateExit} may be written by any
 * thread (it is what a kick sets before signalling the vCPU thread).
 */
public final class KvmRun extends KvmStruct {
    public static final int SIZE = 2352;
    public static final int REQUEST_INTERRUPT_WINDOW_OFFSET = 0;
    public static final int IMMEDIATE_EXIT_OFFSET = 1;
    public static final int EXIT_REASON_OFFSET = 8;
    public static final int READY_FOR_INTERRUPT_INJECTION_OFFSET = 12;
    public static final int IF_FLAG_OFFSET = 13;
    public static final int FLAGS_OFFSET = 14;
    public static final int CR8_OFFSET = 16;
    public static final int APIC_BASE_OFFSET = 24;
    public static final int HW_HARDWARE_EXIT_REASON_OFFSET = 32;
    public static final int FAIL_ENTRY_HARDWARE_ENTRY_FAILURE_REASON_OFFSET = 32;
    public static final int FAIL_ENTRY_CPU_OFFSET = 40;
    public static final int EX_EXCEPTION_OFFSET = 32;
    public static final int EX_ERROR_CODE_OFFSET = 36;
    public static final int IO_DIRECTION_OFFSET = 32;
    public static final int IO_SIZE_OFFSET = 33;
    public static final int IO_PORT_OFFSET = 34;
    public static final int IO_COUNT_OFFSET = 36;
    public static final int IO_DATA_OFFSET_OFFSET = 40;
    public static final int MMIO_PHYS_ADDR_OFFSET = 32;
    public static final int MMIO_DATA_OFFSET = 40;
    public static final int MMIO_LEN_OFFSET = 48;
    public static final int MMIO_IS_WRITE_OFFSET = 52;
    public static final int INTERNAL_SUBERROR_OFFSET = 32;
    public static final int INTERNAL_NDATA_OFFSET = 36;
    public static final int INTERNAL_DATA_OFFSET = 40;
    public static final int SYSTEM_EVENT_TYPE_OFFSET = 32;
    public static final int SYSTEM_EVENT_NDATA_OFFSET = 36;
    public static final int SYSTEM_EVENT_DATA_OFFSET = 40;
    /** Entries in {@code internal.data} and {@code system_event.data}. */
    public static final int EXIT_DATA_MAX = 16;

    private final int length;

    /** A view of the {@code length}-byte mapping at {@code address} (the vCPU's mmap). */
    public KvmRun(long address, int length) {
        super(address, checkLength(length));
        this.length = length;
    }

    /** The mapping's length ({@code KVM_GET_VCPU_MMAP_SIZE}), not {@link #SIZE}. */
    public int length() {
        return length;
    }

    public boolean requestInterruptWindow() {
        return u8(REQUEST_INTERRUPT_WINDOW_OFFSET) != 0;
    }

    public void setRequestInterruptWindow(boolean v) {
        u8(REQUEST_INTERRUPT_WINDOW_OFFSET, v ? 1 : 0);
    }

    public boolean immediateExit() {
        return NativeMemory.getByte(address() + IMMEDIATE_EXIT_OFFSET) != 0;
    }

    /**
     * When set, the next KVM_RUN completes any pending I/O or MMIO and returns EINTR without
     * entering the guest; when KVM_RUN is already running, it takes effect at the next entry.
     */
    public void setImmediateExit(boolean v) {
        NativeMemory.putByte(address() + IMMEDIATE_EXIT_OFFSET, (byte) (v ? 1 : 0));
    }

    public int exitReason() {
        return u32(EXIT_REASON_OFFSET);
    }

    public boolean readyForInterruptInjection() {
        return u8(READY_FOR_INTERRUPT_INJECTION_OFFSET) != 0;
    }

    public boolean ifFlag() {
        return u8(IF_FLAG_OFFSET) != 0;
    }

    /** KVM_RUN_X86_SMM, KVM_RUN_X86_BUS_LOCK. */
    public int flags() {
        return u16(FLAGS_OFFSET);
    }

    public long cr8() {
        return u64(CR8_OFFSET);
    }

    public long apicBase() {
        return u64(APIC_BASE_OFFSET);
    }

    // KVM_EXIT_UNKNOWN, KVM_EXIT_FAIL_ENTRY, KVM_EXIT_EXCEPTION

    public long hardwareExitReason() {
        return u64(HW_HARDWARE_EXIT_REASON_OFFSET);
    }

    public long failEntryHardwareReason() {
        return u64(FAIL_ENTRY_HARDWARE_ENTRY_FAILURE_REASON_OFFSET);
    }

    public int failEntryCpu() {
        return u32(FAIL_ENTRY_CPU_OFFSET);
    }

    public int exException() {
        return u32(EX_EXCEPTION_OFFSET);
    }

    public int exErrorCode() {
        return u32(EX_ERROR_CODE_OFFSET);
    }

    // KVM_EXIT_IO

    /** KVM_EXIT_IO_IN (0) or KVM_EXIT_IO_OUT (1). */
    public int ioDirection() {
        return u8(IO_DIRECTION_OFFSET);
    }

    /** Bytes per access: 1, 2 or 4. */
    public int ioSize() {
        return u8(IO_SIZE_OFFSET);
    }

    public int ioPort() {
        return u16(IO_PORT_OFFSET);
    }

    /** Accesses in this exit (more than one for REP INS/OUTS). */
    public int ioCount() {
        return u32(IO_COUNT_OFFSET);
    }

    public long ioDataOffset() {
        return u64(IO_DATA_OFFSET_OFFSET);
    }

    /**
     * Host address of the I/O data ({@code kvm_run + data_offset}), checked to lie with its
     * {@code count * size} bytes inside the mapping. OUT: read it; IN: write it before KVM_RUN.
     */
    public long ioDataAddress() {
        long off = ioDataOffset();
        long bytes = (long) ioCount() * ioSize();
        if (off < 0 || bytes < 0 || off > length - bytes) {
            throw new IllegalStateException("kvm_run io.data_offset " + off + " + " + bytes
                    + " bytes lies outside the " + length + "-byte mapping");
        }
        return address() + off;
    }

    /** The first access's data as an unsigned value of {@link #ioSize()} bytes (little-endian). */
    public int ioData() {
        long a = ioDataAddress();
        return switch (ioSize()) {
            case 1 -> NativeMemory.getByte(a) & 0xff;
            case 2 -> NativeMemory.getShort(a) & 0xffff;
            case 4 -> NativeMemory.getInt(a);
            default -> throw new IllegalStateException("kvm_run io.size " + ioSize() + " is not 1, 2 or 4");
        };
    }

    /** Writes the value a port IN returns (first access, {@link #ioSize()} bytes). */
    public void setIoData(int v) {
        long a = ioDataAddress();
        switch (ioSize()) {
            case 1 -> NativeMemory.putByte(a, (byte) v);
            case 2 -> NativeMemory.putShort(a, (short) v);
            case 4 -> NativeMemory.putInt(a, v);
            default -> throw new IllegalStateException("kvm_run io.size " + ioSize() + " is not 1, 2 or 4");
        }
    }

    // KVM_EXIT_MMIO

    public long mmioPhysAddr() {
        return u64(MMIO_PHYS_ADDR_OFFSET);
    }

    /** Access width in bytes, 1..8. */
    public int mmioLen() {
        return u32(MMIO_LEN_OFFSET);
    }

    public boolean mmioIsWrite() {
        return u8(MMIO_IS_WRITE_OFFSET) != 0;
    }

    /** Host address of {@code mmio.data[8]}. */
    public long mmioDataAddress() {
        return address() + MMIO_DATA_OFFSET;
    }

    /** The written value, {@link #mmioLen()} bytes little-endian, zero-extended. */
    public long mmioData() {
        long v = u64(MMIO_DATA_OFFSET);
        int len = mmioLen();
        return len >= 8 ? v : v & ((1L << (8 * Math.max(len, 0))) - 1);
    }

    /** Sets the value an MMIO read returns (all 8 bytes; KVM takes {@link #mmioLen()} of them). */
    public void setMmioData(long v) {
        u64(MMIO_DATA_OFFSET, v);
    }

    // KVM_EXIT_INTERNAL_ERROR

    /** KVM_INTERNAL_ERROR_EMULATION, _SIMUL_EX, _DELIVERY_EV, _UNEXPECTED_EXIT_REASON. */
    public int internalSuberror() {
        return u32(INTERNAL_SUBERROR_OFFSET);
    }

    public int internalNdata() {
        return u32(INTERNAL_NDATA_OFFSET);
    }

    public long internalData(int i) {
        return u64(INTERNAL_DATA_OFFSET + 8 * checkIndex(i, EXIT_DATA_MAX, "internal.data"));
    }

    // KVM_EXIT_SYSTEM_EVENT

    /** KVM_SYSTEM_EVENT_SHUTDOWN, _RESET, _CRASH, ... */
    public int systemEventType() {
        return u32(SYSTEM_EVENT_TYPE_OFFSET);
    }

    public int systemEventNdata() {
        return u32(SYSTEM_EVENT_NDATA_OFFSET);
    }

    public long systemEventData(int i) {
        return u64(SYSTEM_EVENT_DATA_OFFSET + 8 * checkIndex(i, EXIT_DATA_MAX, "system_event.data"));
    }

    /** A one-line description of the last exit, for logs and error reports. */
    public String describeExit() {
        int reason = exitReason();
        String name = KvmExit.name(reason);
        return switch (reason) {
            case KvmExit.KVM_EXIT_IO -> String.format("%s %s port 0x%x size %d count %d", name,
                    ioDirection() == KvmExit.KVM_EXIT_IO_OUT ? "out" : "in", ioPort(), ioSize(), ioCount());
            case KvmExit.KVM_EXIT_MMIO -> String.format("%s %s 0x%x len %d", name, mmioIsWrite() ? "write" : "read",
                    mmioPhysAddr(), mmioLen());
            case KvmExit.KVM_EXIT_INTERNAL_ERROR -> {
                StringBuilder sb = new StringBuilder(name).append(" suberror ").append(internalSuberror())
                        .append(" (").append(KvmExit.internalErrorName(internalSuberror())).append(")");
                int n = Math.min(Math.max(internalNdata(), 0), EXIT_DATA_MAX);
                for (int i = 0; i < n; i++) {
                    sb.append(i == 0 ? " data" : ",").append(" 0x").append(Long.toHexString(internalData(i)));
                }
                yield sb.toString();
            }
            case KvmExit.KVM_EXIT_FAIL_ENTRY -> String.format("%s hardware reason 0x%x on cpu %d", name,
                    failEntryHardwareReason(), failEntryCpu());
            case KvmExit.KVM_EXIT_UNKNOWN -> String.format("%s hardware reason 0x%x", name, hardwareExitReason());
            case KvmExit.KVM_EXIT_EXCEPTION -> String.format("%s vector %d error code 0x%x", name, exException(),
                    exErrorCode());
            case KvmExit.KVM_EXIT_SYSTEM_EVENT -> String.format("%s type %d (%s)", name, systemEventType(),
                    KvmExit.systemEventName(systemEventType()));
            default -> name;
        };
    }

    private static int checkLength(int length) {
        if (length < SIZE) {
            throw new IllegalArgumentException("kvm_run mapping of " + length
                    + " bytes is smaller than struct kvm_run (" + SIZE + ")");
        }
        return length;
    }
}
