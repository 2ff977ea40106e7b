package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmCpuid2;
import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.bindings.KvmFpu;
import dev.ferry.core.cpu.kvm.bindings.KvmMsrs;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmRun;
import dev.ferry.core.cpu.kvm.bindings.KvmSegment;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.bindings.KvmXcrs;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The flyweights on their own (no /dev/kvm): layout, byte-array save/load, bounds, ownership. */
class KvmStructTest {
    @Test
    void regsSaveAndLoadThroughBytesLittleEndianAtTheDrawnOffsets() {
        try (KvmRegs a = new KvmRegs(); KvmRegs b = new KvmRegs()) {
            a.setRip(0x1122334455667788L);
            a.setRflags(2);
            a.setGpr(1, 0xcc); // encoding order: 1 is RCX
            byte[] bytes = a.toBytes();
            assertEquals(KvmRegs.SIZE, bytes.length);
            ByteBuffer le = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(0x1122334455667788L, le.getLong(KvmRegs.RIP_OFFSET));
            assertEquals(0xcc, le.getLong(KvmRegs.RCX_OFFSET));
            b.fromBytes(bytes);
            assertEquals(0x1122334455667788L, b.rip());
            assertEquals(0xcc, b.rcx());
            assertThrows(IllegalArgumentException.class, () -> b.fromBytes(new byte[KvmRegs.SIZE - 1]));
            assertThrows(IndexOutOfBoundsException.class, () -> a.gpr(16));
        }
    }

    @Test
    void segmentViewsWriteInsideTheirOwnSlotOfSregs() {
        try (KvmSregs s = new KvmSregs()) {
            KvmSegment cs = s.cs();
            cs.set(0x1000, 0xffffffffL, 0x08, 11, true, false, true, true);
            s.ss().setSelector(0x10);
            s.gdt().setLimit(0x27);
            s.setEfer(0x500);
            ByteBuffer le = ByteBuffer.wrap(s.toBytes()).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(0x1000, le.getLong(KvmSregs.CS_OFFSET + KvmSegment.BASE_OFFSET));
            assertEquals(-1, le.getInt(KvmSregs.CS_OFFSET + KvmSegment.LIMIT_OFFSET));
            assertEquals(0x08, le.getShort(KvmSregs.CS_OFFSET + KvmSegment.SELECTOR_OFFSET));
            assertEquals(1, le.get(KvmSregs.CS_OFFSET + KvmSegment.L_OFFSET));
            assertEquals(0, le.get(KvmSregs.CS_OFFSET + KvmSegment.DB_OFFSET));
            assertEquals(0x10, le.getShort(KvmSregs.SS_OFFSET + KvmSegment.SELECTOR_OFFSET));
            assertEquals(0x27, le.getShort(KvmSregs.GDT_OFFSET + 8));
            assertEquals(0x500, le.getLong(KvmSregs.EFER_OFFSET));
            assertEquals(0xffffffffL, cs.limit());
            assertTrue(cs.toString().startsWith("cs=0008"), cs.toString());
        }
    }

    @Test
    void variableLengthStructsSaveWhatIsInUseAndRefuseInconsistentInput() {
        try (KvmMsrs m = KvmMsrs.of(0x10, 0x174, 0xc0000080); KvmMsrs small = new KvmMsrs(2)) {
            m.setData(2, 0x500);
            assertEquals(8 + 3 * 16, m.byteLength());
            m.setNmsrs(2);
            assertEquals(8 + 2 * 16, m.toBytes().length);
            m.setNmsrs(3);
            byte[] saved = m.toBytes();
            assertThrows(IllegalArgumentException.class, () -> small.fromBytes(saved), "3 entries into capacity 2");
            byte[] lying = saved.clone();
            lying[0] = 7;
            assertThrows(IllegalArgumentException.class, () -> m.fromBytes(lying), "header says 7, 3 follow");
            assertThrows(IllegalArgumentException.class, () -> m.fromBytes(new byte[8 + 17]));
            m.fromBytes(saved);
            assertEquals(0x500, m.data(2));
            assertEquals(2, m.find(0xc0000080));
            assertThrows(IllegalArgumentException.class, () -> m.setNmsrs(4));
        }
        try (KvmCpuid2 c = new KvmCpuid2(2)) {
            c.set(0, 0xd, 1, 1, 1, 2, 3, 4);
            c.set(1, 0xd, 0, 1, 5, 6, 7, 8);
            c.setNent(2);
            assertEquals(1, c.find(0xd, 0), "the sub-leaf is significant");
            assertEquals(-1, c.find(0x1, 0));
        }
    }

    @Test
    void closedStructsRefuseUseAndCloseOnce() {
        KvmFpu fpu = new KvmFpu();
        fpu.close();
        fpu.close();
        assertThrows(IllegalStateException.class, fpu::address);
        assertThrows(IllegalStateException.class, () -> fpu.setMxcsr(0x1f80));
        try (KvmRegs r = new KvmRegs(); KvmXcrs x = new KvmXcrs()) {
            assertThrows(IllegalArgumentException.class, () -> r.copyFrom(x));
            assertThrows(IllegalArgumentException.class, () -> x.setNrXcrs(17));
        }
    }

    @Test
    void kvmRunChecksIoDataAgainstTheMappingAndMasksMmioData() {
        try (Mapping page = Mapping.anonymous(3 * 4096)) {
            KvmRun run = new KvmRun(page.address(), 3 * 4096);
            long a = page.address();
            NativeMemory.putInt(a + KvmRun.EXIT_REASON_OFFSET, KvmExit.KVM_EXIT_IO);
            NativeMemory.putByte(a + KvmRun.IO_DIRECTION_OFFSET, (byte) KvmExit.KVM_EXIT_IO_IN);
            NativeMemory.putByte(a + KvmRun.IO_SIZE_OFFSET, (byte) 2);
            NativeMemory.putShort(a + KvmRun.IO_PORT_OFFSET, (short) 0x3f8);
            NativeMemory.putInt(a + KvmRun.IO_COUNT_OFFSET, 1);
            NativeMemory.putLong(a + KvmRun.IO_DATA_OFFSET_OFFSET, 4096);
            run.setIoData(0xbeef);
            assertEquals(0xbeef, NativeMemory.getShort(a + 4096) & 0xffff);
            assertEquals("KVM_EXIT_IO in port 0x3f8 size 2 count 1", run.describeExit());
            NativeMemory.putLong(a + KvmRun.IO_DATA_OFFSET_OFFSET, 3 * 4096 - 1);
            assertThrows(IllegalStateException.class, run::ioDataAddress, "data past the mapping's end");

            NativeMemory.putInt(a + KvmRun.EXIT_REASON_OFFSET, KvmExit.KVM_EXIT_MMIO);
            NativeMemory.putLong(a + KvmRun.MMIO_DATA_OFFSET, 0x1122334455667788L);
            NativeMemory.putInt(a + KvmRun.MMIO_LEN_OFFSET, 2);
            assertEquals(0x7788, run.mmioData());
            assertFalse(run.immediateExit());
            run.setImmediateExit(true);
            assertEquals(1, NativeMemory.getByte(a + KvmRun.IMMEDIATE_EXIT_OFFSET));
            run.close();
            assertThrows(IllegalStateException.class, run::exitReason);
            assertTrue(page.isMapped(), "a view frees nothing");
        }
        assertThrows(IllegalArgumentException.class, () -> new KvmRun(4096, KvmRun.SIZE - 1));
    }

    @Test
    void xcrsAndMsrsBytesRoundTrip() {
        try (KvmXcrs a = new KvmXcrs(); KvmXcrs b = new KvmXcrs()) {
            a.setNrXcrs(1);
            a.set(0, 0, 7);
            b.fromBytes(a.toBytes());
            assertArrayEquals(a.toBytes(), b.toBytes());
            assertEquals(7, b.value(0));
        }
    }
}
