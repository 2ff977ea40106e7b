package dev.ferry.migration.hostile;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.StreamBytes;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile source speaking multifd: a real destination (multifd on, one channel, over TCP) gets a
 * hand-written main stream and a hand-written channel with one thing wrong. Each is refused with
 * the channel and the fault named, the VM never runs, and no channel thread outlives the load.
 */
@Timeout(20)
class MultifdHostileTest {
    static final int RAM = HostileStreams.RAM_BYTES;
    static NettyMigrationTransports transports;

    @BeforeAll
    static void transports() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    /** A channel's opening: magic, version, uuid, id, padding. */
    static StreamBytes opening(int version, int id) {
        return new StreamBytes().be32(0x11223344).be32(version).bytes(new byte[16]).u8(id).bytes(new byte[7 + 32]);
    }

    /** One packet: the header fields as given, the block name padded to 256 bytes, offsets, page data. */
    static StreamBytes packet(StreamBytes s, int magic, int flags, int alloc, int normal, int zero, long nextSize, long num,
                              byte[] block, long[] offsets, int dataPages) {
        s.be32(magic).be32(1).be32(flags).be32(alloc).be32(normal).be32((int) nextSize).be64(num).be32(zero).be32(0)
                .bytes(new byte[24]);
        byte[] name = new byte[256];
        System.arraycopy(block, 0, name, 0, Math.min(block.length, 256));
        s.bytes(name);
        for (long o : offsets) {
            s.be64(o);
        }
        for (int i = 0; i < dataPages; i++) {
            s.bytes(HostileStreams.pattern());
        }
        return s;
    }

    static final byte[] RAM_BLOCK = "pc.ram".getBytes(StandardCharsets.UTF_8);

    /** A valid SYNC packet with page 1 normal (the pattern) and page 2 zero. */
    static StreamBytes goodSyncPacket(StreamBytes s, long num) {
        return packet(s, 0x11223344, 1, 128, 1, 1, 4096, num, RAM_BLOCK, new long[] {0x1000, 0x2000}, 1);
    }

    /** The main stream up to and including the setup's flush. */
    static StreamBytes mainSetup() {
        return HostileStreams.prologue().start(1, "ram", 0, 4).memSize(RAM).block("pc.ram", RAM).be64(0x200)
                .ramEos().footer(1);
    }

    /** The rest of a valid main stream: RAM's end (a flush), the device, EOF, the vmdesc. */
    static StreamBytes mainRest(StreamBytes s) {
        return s.end(1).be64(0x200).ramEos().footer(1)
                .full(0, "test-dev", 0, 1).testDeviceState(TestDevice.sample()).footer(0)
                .eof().vmdesc("{\"page_size\": 4096, \"devices\": []}");
    }

    record Outcome(MigrationStatus status, String error, TestVm vm) {
    }

    /**
     * Runs one destination against the given channel bytes. The main stream sends its setup, then
     * (after {@code pauseMs}, so the channel is read first) its rest.
     */
    static Outcome run(byte[] channel, StreamBytes rest, long pauseMs) throws Exception {
        return run(channel, List.of(rest), pauseMs);
    }

    /** As above, the main stream's rest in parts, each after {@code pauseMs}. */
    static Outcome run(byte[] channel, List<StreamBytes> rest, long pauseMs) throws Exception {
        TestVm vm = HostileStreams.destination();
        DestinationMigration dst = new DestinationMigration(vm.machine(), transports,
                MigrationCapabilities.defaults().withMultifd(true), MigrationEventSink.NONE, true);
        dst.setMultifdChannels(1);
        String uri = dst.listen("tcp:127.0.0.1:0");
        int port = Integer.parseInt(uri.substring(uri.lastIndexOf(':') + 1));
        try (Socket main = new Socket(InetAddress.getLoopbackAddress(), port);
             Socket ch = new Socket(InetAddress.getLoopbackAddress(), port)) {
            OutputStream m = main.getOutputStream();
            m.write(mainSetup().toByteArray());
            m.flush();
            OutputStream c = ch.getOutputStream();
            try {
                c.write(channel);
                c.flush();
                ch.shutdownOutput(); // the channel ends here: between packets or, if cut short, inside one
                for (StreamBytes part : rest) {
                    Thread.sleep(pauseMs);
                    m.write(part.toByteArray());
                    m.flush();
                }
                main.shutdownOutput();
            } catch (java.io.IOException e) {
                // the destination hung up on a refusal: what it says is the verdict
            }
            MigrationStatus st = dst.await(Duration.ofSeconds(10));
            return new Outcome(st, dst.errorDesc(), vm);
        } finally {
            dst.abort();
            dst.await(Duration.ofSeconds(10));
        }
    }

    static void assertRefused(byte[] channel, String... words) throws Exception {
        assertRefused(channel, mainRest(new StreamBytes()), 0, words);
    }

    static void assertRefused(byte[] channel, StreamBytes rest, long pauseMs, String... words) throws Exception {
        assertRefused(channel, List.of(rest), pauseMs, words);
    }

    static void assertRefused(byte[] channel, List<StreamBytes> rest, long pauseMs, String... words) throws Exception {
        Outcome o = run(channel, rest, pauseMs);
        try (TestVm vm = o.vm()) {
            assertEquals(MigrationStatus.FAILED, o.status(), o.error());
            for (String w : words) {
                assertTrue(o.error().contains(w), "'" + w + "' in: " + o.error());
            }
            assertNotEquals(RunState.RUNNING, vm.machine().runState());
        }
        assertNoChannelThreads();
    }

    static void assertNoChannelThreads() throws InterruptedException {
        for (int i = 0; i < 250; i++) {
            List<String> left = Thread.getAllStackTraces().keySet().stream().map(Thread::getName)
                    .filter(n -> n.startsWith("ferry-multifd")).toList();
            if (left.isEmpty()) {
                return;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("multifd channel threads outlived the load");
    }

    @Test
    void theHandWrittenBaselineLoads() throws Exception {
        byte[] channel = goodSyncPacket(opening(1, 0), 0).toByteArray();
        // The channel must also SYNC for the END section's flush.
        channel = packet(new StreamBytes().bytes(channel), 0x11223344, 1, 128, 0, 0, 0, 1, new byte[0], new long[0], 0)
                .toByteArray();
        Outcome o = run(channel, mainRest(new StreamBytes()), 0);
        try (TestVm vm = o.vm()) {
            assertEquals(MigrationStatus.COMPLETED, o.status(), o.error());
            assertArrayEquals(HostileStreams.pattern(), vm.readPage(1), "the channel's page landed");
            assertEquals(TestDevice.sample(), vm.device());
        }
        assertNoChannelThreads();
    }

    @Test
    void openingWithAnotherVersion() throws Exception {
        assertRefused(opening(2, 0).toByteArray(), "multifd channel opening with version 2");
    }

    @Test
    void channelIdBeyondTheCount() throws Exception {
        assertRefused(opening(1, 5).toByteArray(), "multifd channel 5 connected, but multifd-channels is 1");
    }

    @Test
    void packetWithAWrongMagic() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223345, 1, 128, 0, 0, 0, 0, RAM_BLOCK, new long[0], 0).toByteArray(),
                "multifd channel 0: packet 0: magic 0x11223345");
    }

    @Test
    void unknownFlags() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 3, 128, 0, 0, 0, 0, RAM_BLOCK, new long[0], 0).toByteArray(),
                "multifd channel 0: packet 0: unknown flags 0x3");
    }

    @Test
    void pagesAllocOverTheLimit() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 129, 0, 0, 0, 0, RAM_BLOCK, new long[0], 0).toByteArray(),
                "pages_alloc 129 over the limit of 128");
    }

    @Test
    void morePagesThanAllocated() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 1, 1, 1, 4096, 0, RAM_BLOCK, new long[0], 0).toByteArray(),
                "1 normal and 1 zero pages in a packet of 1");
    }

    @Test
    void hugePageCountsDoNotOverflow() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 128, -1, -1, 0, 0, RAM_BLOCK, new long[0], 0).toByteArray(),
                "4294967295 normal and 4294967295 zero pages in a packet of 128");
    }

    @Test
    void nextPacketSizeThatDisagrees() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 128, 1, 0, 4095, 0, RAM_BLOCK, new long[0], 0).toByteArray(),
                "next_packet_size 4095 for 1 normal pages");
    }

    @Test
    void offsetOutsideTheBlock() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 128, 1, 0, 4096, 0, RAM_BLOCK, new long[] {RAM}, 1)
                .toByteArray(), "page offset 0x4000 outside block 'pc.ram' of 16384 bytes");
    }

    @Test
    void offsetWithBit63() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 128, 0, 1, 0, 0, RAM_BLOCK, new long[] {Long.MIN_VALUE}, 0)
                .toByteArray(), "page offset 0x8000000000000000 outside block");
    }

    @Test
    void unalignedOffset() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 128, 0, 1, 0, 0, RAM_BLOCK, new long[] {0x1001}, 0)
                .toByteArray(), "page offset 0x1001 not page-aligned");
    }

    @Test
    void unknownRamBlock() throws Exception {
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 128, 0, 1, 0, 0, "pc.rom\u0001".getBytes(StandardCharsets.UTF_8),
                new long[] {0}, 0).toByteArray(), "RAM block 'pc.rom\\x01', which this VM lacks");
    }

    @Test
    void unterminatedBlockName() throws Exception {
        byte[] name = new byte[256];
        java.util.Arrays.fill(name, (byte) 'a');
        assertRefused(packet(opening(1, 0), 0x11223344, 1, 128, 0, 1, 0, 0, name, new long[] {0}, 0).toByteArray(),
                "RAM block name not terminated");
    }

    @Test
    void packetNumbersThatDoNotGrow() throws Exception {
        StreamBytes s = packet(opening(1, 0), 0x11223344, 0, 128, 0, 1, 0, 7, RAM_BLOCK, new long[] {0}, 0);
        assertRefused(packet(s, 0x11223344, 1, 128, 0, 1, 0, 7, RAM_BLOCK, new long[] {0}, 0).toByteArray(),
                "packet 1: packet_num 7 after 7");
    }

    @Test
    void channelEndingInsideAPacket() throws Exception {
        byte[] whole = goodSyncPacket(opening(1, 0), 0).toByteArray();
        assertRefused(java.util.Arrays.copyOf(whole, whole.length - 100), "multifd channel 0: the channel ended inside a packet");
    }

    @Test
    void pagesAfterTheLastSynchronisationPoint() throws Exception {
        StreamBytes s = goodSyncPacket(opening(1, 0), 0);
        s = packet(s, 0x11223344, 1, 128, 0, 0, 0, 1, new byte[0], new long[0], 0); // the END's flush
        s = packet(s, 0x11223344, 0, 128, 1, 0, 4096, 2, RAM_BLOCK, new long[] {0x3000}, 1); // and then more
        // The END's flush first; the device state and EOF once the channel has applied the extra packet.
        StreamBytes end = new StreamBytes().end(1).be64(0x200).ramEos().footer(1);
        StreamBytes tail = new StreamBytes().full(0, "test-dev", 0, 1).testDeviceState(TestDevice.sample()).footer(0)
                .eof().vmdesc("{\"page_size\": 4096, \"devices\": []}");
        assertRefused(s.toByteArray(), List.of(end, tail), 300,
                "multifd channel 0 carried 1 pages after the last synchronisation point");
    }

    @Test
    void mainStreamEndsWhileTheChannelsWait() throws Exception {
        assertRefused(goodSyncPacket(opening(1, 0), 0).toByteArray(), new StreamBytes().end(1), 0,
                "without its end");
    }

    @Test
    void aPageInTheMainStream() throws Exception {
        byte[] channel = goodSyncPacket(opening(1, 0), 0).toByteArray();
        assertRefused(channel, new StreamBytes().part(1).zeroPage(0, "pc.ram"), 0,
                "a page record in the main stream", "turn the multifd capability on at the source too");
    }
}
