package dev.ferry.migration.hostile;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.Gpa;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.InMemoryMigration.Incoming;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.StreamBytes;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static dev.ferry.migration.hostile.HostileStreams.assertRefused;
import static dev.ferry.migration.hostile.HostileStreams.load;
import static dev.ferry.migration.hostile.HostileStreams.loadSocketLike;
import static dev.ferry.migration.hostile.HostileStreams.prologue;
import static dev.ferry.migration.hostile.HostileStreams.ramSetup;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The destination treats the incoming stream as hostile: each test feeds the real
 * {@code DestinationMigration} a stream with one thing wrong and expects a refusal that names the
 * problem, with the VM left in inmigrate, no hang (every test is bounded) and no allocation sized
 * by the stream. The streams are written by hand ({@link StreamBytes}), not by the engine.
 */
@Timeout(10)
class HostileStreamTest {

    @BeforeAll
    static void warmUp() throws Exception {
        // Loads the engine's classes once, so allocation measured on the incoming thread is the
        // reading of the stream, not class loading.
        load(HostileStreams.valid());
    }

    @Test
    void theHandWrittenBaselineLoads() throws Exception {
        try (TestVm vm = HostileStreams.destination()) {
            Incoming r = InMemoryMigration.load(vm.machine(), HostileStreams.valid(),
                    new MemoryTransports().chunkSize(7));
            assertEquals(MigrationStatus.COMPLETED, r.status(), r::toString);
            assertEquals(RunState.RUNNING, vm.machine().runState());
            assertEquals(TestDevice.sample(), vm.device());
            assertArrayEquals(HostileStreams.pattern(), vm.readPage(1));
            assertEquals(0, r.connection().unreleasedChunks());
        }
    }

    @Nested
    class FileHeader {
        @Test
        void wrongMagic() throws Exception {
            assertRefused(load(new StreamBytes().be32(0x5145564e).be32(3).toByteArray()),
                    "not a migration stream: magic 0x5145564e");
        }

        @Test
        void wrongVersion() throws Exception {
            assertRefused(load(new StreamBytes().be32(0x5145564d).be32(2).toByteArray()),
                    "unsupported migration stream version 2");
        }

        @Test
        void emptyStream() throws Exception {
            assertRefused(load(new byte[0]), "migration stream ended after 0 bytes without its end");
        }

        @Test
        void configurationLength0xffffffff() throws Exception {
            assertRefused(load(new StreamBytes().header().u8(0x07).be32(0xffffffff).toByteArray()),
                    "configuration section of 4294967295 bytes");
        }

        @Test
        void configurationLengthJustOverTheCap() throws Exception {
            assertRefused(load(new StreamBytes().header().u8(0x07).be32(257).bytes(new byte[257]).toByteArray()),
                    "configuration section of 257 bytes");
        }
    }

    @Nested
    class Framing {
        @Test
        void footerWithAWrongByte() throws Exception {
            byte[] s = prologue().start(1, "ram", 0, 4).memSize(16 << 10).block("pc.ram", 16 << 10).ramEos()
                    .u8(0x7f).be32(1).toByteArray();
            assertRefused(load(s), "section 'ram' (id 1): expected footer 0x7e, found 0x7f");
        }

        @Test
        void footerNamingAnotherSection() throws Exception {
            byte[] s = prologue().start(1, "ram", 0, 4).memSize(16 << 10).block("pc.ram", 16 << 10).ramEos()
                    .footer(2).toByteArray();
            assertRefused(load(s), "section 'ram': footer names section 2, expected 1");
        }

        @ParameterizedTest(name = "type 0x{0}")
        @ValueSource(ints = {0x05, 0x06, 0x09, 0x7e, 0x7f, 0xff})
        void unknownSectionType(int type) throws Exception {
            // 8 bytes of header + 10 of configuration: the bad type byte is at offset 18.
            assertRefused(load(prologue().u8(type).be32(0).toByteArray()),
                    String.format("unknown section type 0x%02x at stream offset 18", type));
        }

        @Test
        void unknownSectionIdstr() throws Exception {
            assertRefused(load(prologue().full(0, "nosuch-dev", 0, 1).footer(0).toByteArray()),
                    "unknown section 'nosuch-dev' instance 0");
        }

        @Test
        void knownIdstrWithAnUnknownInstance() throws Exception {
            assertRefused(load(prologue().full(0, "test-dev", 1, 1).footer(0).toByteArray()),
                    "unknown section 'test-dev' instance 1");
        }

        @Test
        void ramSectionVersionNewerThanSupported() throws Exception {
            assertRefused(load(prologue().start(1, "ram", 0, 5).toByteArray()),
                    "section 'ram' instance 0: stream version 5, this VM supports up to 4");
        }

        @Test
        void deviceSectionVersionNewerThanSupported() throws Exception {
            assertRefused(load(ramSetup().full(0, "test-dev", 0, 2).testDeviceState(TestDevice.sample()).footer(0)
                    .toByteArray()), "section 'test-dev' instance 0: stream version 2, this VM supports up to 1");
        }

        @Test
        void sectionVersionZero() throws Exception {
            assertRefused(load(prologue().full(0, "test-dev", 0, 0).toByteArray()),
                    "section 'test-dev' instance 0: stream version 0");
        }

        @Test
        void ramSectionVersionOlderThanSupported() throws Exception {
            assertRefused(load(prologue().start(1, "ram", 0, 3).toByteArray()),
                    "ram: unsupported section version 3 (expected 4)");
        }

        @Test
        void partForANeverStartedSection() throws Exception {
            assertRefused(load(ramSetup().part(9).ramEos().footer(9).toByteArray()),
                    "SECTION_PART for unknown section id 9");
        }

        @Test
        void endForANeverStartedSection() throws Exception {
            assertRefused(load(ramSetup().end(9).ramEos().footer(9).toByteArray()),
                    "SECTION_END for unknown section id 9");
        }

        @Test
        void partForAFullSectionsId() throws Exception {
            byte[] s = ramSetup().full(0, "test-dev", 0, 1).testDeviceState(TestDevice.sample()).footer(0)
                    .part(0).toByteArray();
            assertRefused(load(s), "SECTION_PART for unknown section id 0");
        }

        @Test
        void startTwiceWithTheSameId() throws Exception {
            byte[] s = ramSetup().start(1, "ram", 0, 4).memSize(16 << 10).block("pc.ram", 16 << 10).ramEos()
                    .footer(1).toByteArray();
            assertRefused(load(s), "section id 1 started twice");
        }

        @Test
        void startForANonIterableDevice() throws Exception {
            assertRefused(load(prologue().start(0, "test-dev", 0, 1).toByteArray()),
                    "section 'test-dev' is not iterable but came as SECTION_START");
        }

        @Test
        void sectionDataLongerThanTheDeviceLayout() throws Exception {
            byte[] s = ramSetup().full(0, "test-dev", 0, 1).testDeviceState(TestDevice.sample()).u8(0x00).footer(0)
                    .toByteArray();
            assertRefused(load(s), "section 'test-dev' (id 0): expected footer 0x7e, found 0x00");
        }
    }

    @Nested
    class Commands {
        @Test
        void pingWithLength0xffff() throws Exception {
            assertRefused(load(prologue().u8(0x08).be16(2).be16(0xffff).toByteArray()),
                    "PING command with 65535 bytes");
        }

        @Test
        void openReturnPathWithLength0xffff() throws Exception {
            // OPEN_RETURN_PATH has no payload (QEMU: mig_cmd_args len 0); a length must not make
            // the destination swallow the following 64 KiB of sections as "payload".
            assertRefused(loadSocketLike(prologue().u8(0x08).be16(1).be16(0xffff).toByteArray()),
                    "OPEN_RETURN_PATH command with 65535 bytes");
        }

        @Test
        void unknownCommandWithLength0xffff() throws Exception {
            assertRefused(load(prologue().u8(0x08).be16(0x0c).be16(0xffff).toByteArray()),
                    "unsupported migration command 12");
        }

        @Test
        void switchoverStartWithAPayload() throws Exception {
            assertRefused(load(prologue().u8(0x08).be16(0x0b).be16(0xffff).toByteArray()),
                    "SWITCHOVER_START command with 65535 bytes");
        }

        @Test
        void openReturnPathOnAFile() throws Exception {
            assertRefused(load(prologue().command(1, new byte[0]).toByteArray()),
                    "the source asked for a return path this transport lacks");
        }

        @Test
        void aFailureAfterOpenReturnPathIsReportedToTheSourceAsShut1() throws Exception {
            Incoming r = loadSocketLike(prologue().command(1, new byte[0]).command(2, new byte[] {0, 0, 0, 7})
                    .u8(0x09).toByteArray());
            assertRefused(r, "unknown section type 0x09");
            // PONG(7) for the PING, then SHUT(1): be16 type, be16 length, payload (heartbeats aside).
            assertArrayEquals(new StreamBytes().be16(2).be16(4).be32(7).be16(1).be16(4).be32(1).toByteArray(),
                    withoutHeartbeats(r.connection().writtenBytes()));
        }

        /** The return path's messages without the destination's heartbeats (PONG "BEAT", every 500 ms). */
        private static byte[] withoutHeartbeats(byte[] rp) {
            java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(rp);
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            while (in.remaining() >= 4) {
                int start = in.position();
                int type = Short.toUnsignedInt(in.getShort());
                int len = Short.toUnsignedInt(in.getShort());
                in.position(Math.min(rp.length, in.position() + len));
                boolean beat = type == 2 && len == 4 && java.nio.ByteBuffer.wrap(rp, start + 4, 4).getInt() == 0x42454154;
                if (!beat) {
                    out.write(rp, start, in.position() - start);
                }
            }
            out.write(rp, in.position(), in.remaining());
            return out.toByteArray();
        }
    }

    @Nested
    class Vmdesc {
        private StreamBytes validUpToEof() {
            // The complete stream up to and including EOF, without its vmdesc.
            StreamBytes s = ramSetup().part(1).zeroPage(0, "pc.ram").ramEos().footer(1).end(1).ramEos().footer(1)
                    .full(0, "test-dev", 0, 1).testDeviceState(TestDevice.sample()).footer(0);
            return s.eof();
        }

        @Test
        void lengthOf4GiB() throws Exception {
            assertRefused(loadSocketLike(validUpToEof().u8(0x06).be32(0xffffffff).toByteArray()),
                    "vmdesc of 4294967295 bytes");
        }

        @Test
        void lengthOf2GiB() throws Exception {
            assertRefused(loadSocketLike(validUpToEof().u8(0x06).be32(0x7fffffff).toByteArray()),
                    "vmdesc of 2147483647 bytes");
        }

        @Test
        void lengthJustUnderTheCapIsSkippedNotAllocated() throws Exception {
            // 16 MiB - 1 is accepted as a length; the stream then ends. The reader must skip, not
            // buffer: assertRefused bounds the incoming thread's allocation well below 16 MiB.
            Incoming r = loadSocketLike(validUpToEof().u8(0x06).be32((16 << 20) - 1).bytes(new byte[100])
                    .toByteArray());
            assumeTrue(r.connection().readerAllocatedBytes() >= 0, "this JVM cannot measure per-thread allocation");
            assertRefused(r, "without its end");
        }

        @Test
        void somethingElseAfterEof() throws Exception {
            assertRefused(loadSocketLike(validUpToEof().u8(0x07).be32(0).toByteArray()),
                    "expected the vmdesc after EOF, found 0x07");
        }

        @Test
        void theStreamTheseTestsCutLoadsWithItsVmdesc() throws Exception {
            assertEquals(MigrationStatus.COMPLETED, loadSocketLike(validUpToEof().vmdesc("{}").toByteArray()).status());
        }
    }

    @Nested
    class Ram {
        @Test
        void unknownBlockInMemSize() throws Exception {
            assertRefused(load(prologue().start(1, "ram", 0, 4).memSize(16 << 10).block("pc.rom", 16 << 10)
                    .toByteArray()), "ram: the stream has RAM block 'pc.rom', which this VM lacks");
        }

        @Test
        void unknownBlockInAPageRecord() throws Exception {
            assertRefused(load(ramSetup().part(1).zeroPage(0, "pc.rom").toByteArray()),
                    "ram: the stream has RAM block 'pc.rom', which this VM lacks");
        }

        @Test
        void emptyBlockName() throws Exception {
            assertRefused(load(ramSetup().part(1).be64(0x02).u8(0).toByteArray()), "ram: empty RAM block name");
        }

        @Test
        void memSizeTotalMismatch() throws Exception {
            assertRefused(load(prologue().start(1, "ram", 0, 4).memSize(32 << 10).block("pc.ram", 32 << 10)
                    .toByteArray()), "ram: the stream carries 32768 bytes of RAM, this VM has 16384");
        }

        @Test
        void memSizeBlockLengthMismatch() throws Exception {
            assertRefused(load(prologue().start(1, "ram", 0, 4).memSize(16 << 10).block("pc.ram", 8 << 10)
                    .toByteArray()), "ram: block 'pc.ram' is 8192 bytes in the stream, 16384 here");
        }

        @Test
        void zeroPageJustBeyondTheBlockEnd() throws Exception {
            assertRefused(load(ramSetup().part(1).zeroPage(0x4000, "pc.ram").toByteArray()),
                    "ram: page offset 0x4000 outside block 'pc.ram' of 16384 bytes");
        }

        @Test
        void pageFarBeyondTheBlockEnd() throws Exception {
            assertRefused(load(ramSetup().part(1).page(0x7ffffffffffff000L, "pc.ram", new byte[4096]).toByteArray()),
                    "ram: page offset 0x7ffffffffffff000 outside block 'pc.ram'");
        }

        @Test
        void pageOffsetWithTheTopBitSet() throws Exception {
            // Read as a signed long this offset is negative; it must be refused like any other
            // offset outside the block, not reach guest memory's own bounds check.
            assertRefused(load(ramSetup().part(1).zeroPage(0x8000000000000000L, "pc.ram").toByteArray()),
                    "ram: page offset 0x8000000000000000 outside block 'pc.ram'");
        }

        @Test
        void continueWithNoPreviousBlock() throws Exception {
            assertRefused(load(ramSetup().part(1).zeroPageContinue(0).toByteArray()),
                    "ram: CONTINUE record with no previous block");
        }

        @ParameterizedTest(name = "flags 0x{0}")
        @ValueSource(ints = {0x01, 0x20, 0x40, 0x80, 0x100, 0x400, 0x800})
        void unknownOrUnsupportedFlags(int flags) throws Exception {
            assertRefused(load(ramSetup().part(1).be64(flags).toByteArray()),
                    String.format("ram: unsupported record flags 0x%x", flags));
        }

        @Test
        void eosWithAnotherFlag() throws Exception {
            assertRefused(load(ramSetup().part(1).be64(0x10 | 0x40).toByteArray()),
                    "ram: unknown flags 0x40 with EOS");
        }

        @Test
        void zeroPageBeforeMemSize() throws Exception {
            assertRefused(load(prologue().start(1, "ram", 0, 4).zeroPage(0, "pc.ram").toByteArray()),
                    "ram: page record before the MEM_SIZE record");
        }

        @Test
        void pageBeforeMemSize() throws Exception {
            assertRefused(load(prologue().start(1, "ram", 0, 4).page(0, "pc.ram", new byte[4096]).toByteArray()),
                    "ram: page record before the MEM_SIZE record");
        }

        @Test
        void aRefusedPageLeavesGuestMemoryAsItWas() throws Exception {
            try (TestVm vm = HostileStreams.destination()) {
                vm.memory().writeLong(Gpa.of(0x3000), 0x1122334455667788L);
                long before = vm.memory().digest();
                Incoming r = InMemoryMigration.load(vm.machine(),
                        ramSetup().part(1).zeroPage(0x4000, "pc.ram").toByteArray(), new MemoryTransports());
                assertRefused(r, "outside block");
                assertEquals(before, vm.memory().digest());
            }
        }
    }

    @Nested
    class DeviceState {
        private StreamBytes deviceFields(TestDevice d) {
            return ramSetup().full(0, "test-dev", 0, 1).be32(d.id()).be64(d.counter()).bytes(d.mac());
        }

        @Test
        void unknownSubsection() throws Exception {
            byte[] s = deviceFields(TestDevice.sample()).u8(1).u8(0x05).str("test-dev/bogus").be32(1).footer(0)
                    .toByteArray();
            assertRefused(load(s), "test-dev: unknown subsection 'test-dev/bogus'");
        }

        @Test
        void subsectionVersionNewerThanSupported() throws Exception {
            byte[] s = deviceFields(TestDevice.sample()).u8(1).u8(0x05).str("test-dev/extra").be32(2).be16(1)
                    .footer(0).toByteArray();
            assertRefused(load(s), "test-dev/extra: stream has version 2, this build knows up to 1");
        }

        @Test
        void boolFieldValue2() throws Exception {
            assertRefused(load(deviceFields(TestDevice.sample()).u8(2).footer(0).toByteArray()),
                    "field enabled: bool value 2");
        }

        @Test
        void deviceSectionCutBeforeItsFooter() throws Exception {
            assertRefused(load(deviceFields(TestDevice.sample()).toByteArray()), "without its end");
        }
    }
}
