package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmIoeventfd;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqLevel;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqRouting;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqchip;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqfd;
import dev.ferry.core.cpu.kvm.bindings.KvmPitConfig;
import dev.ferry.core.cpu.kvm.bindings.KvmPitState2;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The interrupt-wiring flyweights on their own (no /dev/kvm): layout, byte-array save/load, bounds. */
class KvmIrqStructTest {
    private static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void irqLevelPutsTheGsiAndLevelAtTheDrawnOffsets() {
        try (KvmIrqLevel l = new KvmIrqLevel()) {
            l.set(5, true);
            ByteBuffer b = le(l.toBytes());
            assertEquals(5, b.getInt(KvmIrqLevel.IRQ_OFFSET));
            assertEquals(1, b.getInt(KvmIrqLevel.LEVEL_OFFSET));
            l.set(5, false);
            assertEquals(0, l.level());
            assertEquals(5, l.status(), "irq and status share the union");
        }
    }

    @Test
    void irqfdSetZeroesThePaddingKvmChecks() {
        try (KvmIrqfd a = new KvmIrqfd(); KvmIrqfd b = new KvmIrqfd()) {
            byte[] dirty = new byte[KvmIrqfd.SIZE];
            java.util.Arrays.fill(dirty, (byte) 0x5a);
            a.fromBytes(dirty);
            a.set(7, 5, KvmConstants.KVM_IRQFD_FLAG_RESAMPLE, 9);
            ByteBuffer bytes = le(a.toBytes());
            assertEquals(7, bytes.getInt(KvmIrqfd.FD_OFFSET));
            assertEquals(5, bytes.getInt(KvmIrqfd.GSI_OFFSET));
            assertEquals(2, bytes.getInt(KvmIrqfd.FLAGS_OFFSET));
            assertEquals(9, bytes.getInt(KvmIrqfd.RESAMPLEFD_OFFSET));
            for (int i = KvmIrqfd.PAD_OFFSET; i < KvmIrqfd.SIZE; i++) {
                assertEquals(0, bytes.get(i), "pad byte " + i);
            }
            b.fromBytes(a.toBytes());
            assertEquals(9, b.resamplefd());
            assertThrows(IllegalArgumentException.class, () -> b.fromBytes(new byte[KvmIrqfd.SIZE + 1]));
        }
    }

    @Test
    void ioeventfdRoundTripsAndZeroesThePadding() {
        try (KvmIoeventfd a = new KvmIoeventfd(); KvmIoeventfd b = new KvmIoeventfd()) {
            byte[] dirty = new byte[KvmIoeventfd.SIZE];
            java.util.Arrays.fill(dirty, (byte) -1);
            a.fromBytes(dirty);
            a.set(0x1122334455667788L, 0xd000_0050L, 4, 11, KvmConstants.KVM_IOEVENTFD_FLAG_DATAMATCH);
            ByteBuffer bytes = le(a.toBytes());
            assertEquals(0x1122334455667788L, bytes.getLong(KvmIoeventfd.DATAMATCH_OFFSET));
            assertEquals(0xd000_0050L, bytes.getLong(KvmIoeventfd.ADDR_OFFSET));
            assertEquals(4, bytes.getInt(KvmIoeventfd.LEN_OFFSET));
            assertEquals(11, bytes.getInt(KvmIoeventfd.FD_OFFSET));
            assertEquals(1, bytes.getInt(KvmIoeventfd.FLAGS_OFFSET));
            for (int i = KvmIoeventfd.PAD_OFFSET; i < KvmIoeventfd.SIZE; i++) {
                assertEquals(0, bytes.get(i), "pad byte " + i);
            }
            b.fromBytes(a.toBytes());
            assertEquals(0xd000_0050L, b.addr());
            assertEquals(0x1122334455667788L, b.datamatch());
        }
    }

    @Test
    void irqchipReadsTheIoapicAndPicInsideTheUnionAndRefusesABadChipId() {
        try (KvmIrqchip io = KvmIrqchip.of(KvmConstants.KVM_IRQCHIP_IOAPIC); KvmIrqchip copy = new KvmIrqchip();
             KvmIrqchip pic = KvmIrqchip.of(KvmConstants.KVM_IRQCHIP_PIC_MASTER)) {
            io.setIoapicRedirection(5, (1L << 16) | (1L << 15) | (1L << 14) | 0x35);
            byte[] saved = io.toBytes();
            assertEquals(KvmIrqchip.SIZE, saved.length);
            le(saved).putInt(KvmIrqchip.IOAPIC_IRR_OFFSET, 1 << 5);
            copy.fromBytes(saved);
            assertEquals(1 << 5, copy.ioapicIrr());
            assertTrue(copy.ioapicMasked(5));
            assertTrue(copy.ioapicLevelTriggered(5));
            assertTrue(copy.ioapicRemoteIrr(5));
            assertFalse(copy.ioapicMasked(4));
            assertEquals(0x35, copy.ioapicRedirection(5) & 0xff);
            assertThrows(IndexOutOfBoundsException.class, () -> copy.ioapicRedirection(KvmIrqchip.IOAPIC_NUM_PINS));
            assertThrows(IllegalStateException.class, copy::picIrr, "the IOAPIC has no PIC IRR");
            assertThrows(IllegalStateException.class, pic::ioapicIrr, "a PIC has no IOAPIC IRR");
            byte[] picBytes = pic.toBytes();
            picBytes[KvmIrqchip.PIC_IRR_OFFSET] = 0x20;
            picBytes[KvmIrqchip.PIC_IMR_OFFSET] = (byte) 0xfb;
            pic.fromBytes(picBytes);
            assertEquals(0x20, pic.picIrr());
            assertEquals(0xfb, pic.picImr());
            byte[] bad = saved.clone();
            bad[0] = 3;
            assertThrows(IllegalArgumentException.class, () -> copy.fromBytes(bad), "chip_id 3 is no chip");
            assertThrows(IllegalArgumentException.class, () -> copy.setChipId(-1));
        }
    }

    @Test
    void pitStructsCarryFlagsAtTheDrawnOffsets() {
        try (KvmPitConfig c = new KvmPitConfig(); KvmPitState2 s = new KvmPitState2();
             KvmPitState2 t = new KvmPitState2()) {
            c.setFlags(KvmConstants.KVM_PIT_SPEAKER_DUMMY);
            assertEquals(1, le(c.toBytes()).getInt(KvmPitConfig.FLAGS_OFFSET));
            byte[] state = s.toBytes();
            state[KvmPitState2.CHANNELS_OFFSET + 3] = 0x42;
            le(state).putInt(KvmPitState2.FLAGS_OFFSET, 1);
            t.fromBytes(state);
            assertEquals(1, t.flags());
            assertArrayEquals(state, t.toBytes());
            assertThrows(IllegalArgumentException.class, () -> t.fromBytes(new byte[KvmPitState2.SIZE - 4]));
        }
    }

    @Test
    void irqRoutingSavesTheEntriesInUseAndRefusesInconsistentInput() {
        try (KvmIrqRouting r = new KvmIrqRouting(3); KvmIrqRouting small = new KvmIrqRouting(1);
             KvmIrqRouting copy = new KvmIrqRouting(3)) {
            r.setIrqchip(0, 5, KvmConstants.KVM_IRQCHIP_IOAPIC, 5);
            r.setIrqchip(1, 5, KvmConstants.KVM_IRQCHIP_PIC_MASTER, 5);
            r.setNr(2);
            byte[] saved = r.toBytes();
            assertEquals(KvmIrqRouting.SIZE + 2 * KvmIrqRouting.ENTRY_SIZE, saved.length);
            ByteBuffer b = le(saved);
            int e1 = KvmIrqRouting.ENTRIES_OFFSET + KvmIrqRouting.ENTRY_SIZE;
            assertEquals(5, b.getInt(e1 + KvmIrqRouting.ENTRY_GSI_OFFSET));
            assertEquals(KvmConstants.KVM_IRQ_ROUTING_IRQCHIP, b.getInt(e1 + KvmIrqRouting.ENTRY_TYPE_OFFSET));
            assertEquals(KvmConstants.KVM_IRQCHIP_PIC_MASTER, b.getInt(e1 + KvmIrqRouting.ENTRY_IRQCHIP_IRQCHIP_OFFSET));
            assertEquals(5, b.getInt(e1 + KvmIrqRouting.ENTRY_IRQCHIP_PIN_OFFSET));
            copy.fromBytes(saved);
            assertEquals(2, copy.nr());
            assertEquals(KvmConstants.KVM_IRQCHIP_IOAPIC, copy.irqchip(0));
            assertEquals(5, copy.pin(1));
            assertThrows(IllegalArgumentException.class, () -> small.fromBytes(saved), "2 entries into capacity 1");
            byte[] lying = saved.clone();
            lying[KvmIrqRouting.NR_OFFSET] = 3;
            assertThrows(IllegalArgumentException.class, () -> copy.fromBytes(lying), "header says 3, 2 follow");
            assertThrows(IllegalArgumentException.class, () -> r.setNr(4));
            assertThrows(IndexOutOfBoundsException.class, () -> r.setIrqchip(3, 0, 0, 0));
            assertThrows(IllegalArgumentException.class, () -> new KvmIrqRouting(4097));
        }
    }
}
