package dev.ferry.migration.analyze;

import dev.ferry.migration.ram.RamFlags;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the data of QEMU's "ram" section (version 4) — START, PART and END alike — counting
 * pages per block and skipping their payloads. Each record starts with
 * {@code be64 (offset | flags)}, the flags in the bits below the target page size:
 * <pre>
 * MEM_SIZE 0x04 : total | per block: u8 len | idstr | be64 length [| be64 mr addr with x-ignore-shared]
 *                 (blocks until their lengths add up to the total)
 * ZERO     0x02 : [u8 len | idstr unless CONTINUE 0x20] | u8 fill byte
 * PAGE     0x08 : [u8 len | idstr unless CONTINUE 0x20] | page_size bytes (skipped)
 * MULTIFD_FLUSH 0x200 : nothing (QEMU 9+ with multifd)
 * EOS      0x10 : end of this section's RAM data
 * XBZRLE 0x40, COMPRESS_PAGE 0x100, HOOK 0x80 : unsupported (their payloads cannot be followed)
 * </pre>
 * CONTINUE refers to the block of the previous record, across sections, as QEMU's loader does.
 * Not thread-safe.
 */
final class RamSectionReader {
    /** Per-page tracking (distinct pages, page runs) only for guests up to this much RAM. */
    static final long TRACK_LIMIT = 1L << 40;
    static final int MAX_BLOCKS = 4096;

    private final StreamInput in;
    private final int pageSize;
    private final boolean ignoreShared;
    private final Map<String, RamBlockTally> blocks = new LinkedHashMap<>();
    private RamBlockTally current;
    private boolean memSizeSeen;
    private boolean tracked;

    RamSectionReader(StreamInput in, int pageSize, boolean ignoreShared) {
        this.in = in;
        this.pageSize = pageSize;
        this.ignoreShared = ignoreShared;
    }

    /** Reads records up to and including EOS. */
    void readSection() throws IOException, AnalysisException {
        long mask = pageSize - 1;
        while (true) {
            long at = in.offset();
            long header = in.be64("a RAM record header");
            int flags = (int) (header & mask);
            long addr = header & ~mask;
            switch (flags & ~RamFlags.CONTINUE) {
                case RamFlags.MEM_SIZE -> memSize(at, addr);
                case RamFlags.ZERO -> {
                    RamBlockTally b = block(at, flags, addr);
                    in.u8("the fill byte of a ZERO record");
                    b.zero(addr);
                }
                case RamFlags.PAGE -> {
                    RamBlockTally b = block(at, flags, addr);
                    in.skip(pageSize, "a RAM page of block " + b.name() + " (" + pageSize + " bytes)");
                    b.normal(addr);
                }
                case RamFlags.MULTIFD_FLUSH -> {
                }
                case RamFlags.EOS -> {
                    return;
                }
                case RamFlags.XBZRLE -> throw AnalysisException.unsupported(at, "ram: XBZRLE-encoded page at offset " + at
                        + ": the analyzer cannot follow XBZRLE deltas (save without the xbzrle capability)");
                case RamFlags.COMPRESS_PAGE -> throw AnalysisException.unsupported(at, "ram: compressed page at offset "
                        + at + ": the analyzer cannot follow compressed pages (save without the compress capability)");
                case RamFlags.HOOK -> throw AnalysisException.unsupported(at, "ram: RDMA hook record at offset " + at
                        + ": RDMA streams are not supported");
                default -> throw AnalysisException.malformed(at, "ram: record at offset " + at + " has unknown flags 0x"
                        + Integer.toHexString(flags));
            }
        }
    }

    private void memSize(long at, long total) throws IOException, AnalysisException {
        if (memSizeSeen) {
            throw AnalysisException.malformed(at, "ram: a second MEM_SIZE record at offset " + at);
        }
        memSizeSeen = true;
        if (total < 0) {
            throw AnalysisException.malformed(at, "ram: MEM_SIZE at offset " + at + " claims 0x"
                    + Long.toHexString(total) + " bytes of RAM");
        }
        tracked = total <= TRACK_LIMIT;
        long sum = 0;
        while (sum < total) {
            long blockAt = in.offset();
            if (blocks.size() == MAX_BLOCKS) {
                throw AnalysisException.malformed(blockAt, "ram: MEM_SIZE at offset " + at + " lists more than "
                        + MAX_BLOCKS + " RAM blocks");
            }
            String name = in.countedString(1, "a RAM block name in MEM_SIZE");
            long length = in.be64("the length of RAM block " + name);
            if (ignoreShared) {
                in.be64("the guest address of RAM block " + name + " (x-ignore-shared)");
            }
            if (length < 0 || length > total - sum) {
                throw AnalysisException.malformed(blockAt, "ram: MEM_SIZE at offset " + at + ": block " + name
                        + " of 0x" + Long.toHexString(length) + " bytes overruns the total 0x" + Long.toHexString(total));
            }
            if (blocks.containsKey(name)) {
                throw AnalysisException.malformed(blockAt, "ram: MEM_SIZE at offset " + at + " lists block " + name
                        + " twice");
            }
            blocks.put(name, new RamBlockTally(name, length, pageSize, tracked));
            sum += length;
        }
    }

    /** The block a ZERO or PAGE record is for, checking the page lies inside it. */
    private RamBlockTally block(long at, int flags, long addr) throws IOException, AnalysisException {
        RamBlockTally b;
        if ((flags & RamFlags.CONTINUE) != 0) {
            if (current == null) {
                throw AnalysisException.malformed(at, "ram: record at offset " + at
                        + " continues the previous block, but no block was named before");
            }
            b = current;
        } else {
            String name = in.countedString(1, "the RAM block name of the record at offset " + at);
            b = blocks.get(name);
            if (b == null) {
                throw AnalysisException.malformed(at, "ram: record at offset " + at + " names RAM block " + name
                        + (memSizeSeen ? ", which MEM_SIZE did not list" : " before any MEM_SIZE record"));
            }
            current = b;
        }
        if (Long.compareUnsigned(addr, b.length()) >= 0) {
            throw AnalysisException.malformed(at, "ram: page 0x" + Long.toHexString(addr) + " at offset " + at
                    + " lies outside RAM block " + b.name() + " (0x" + Long.toHexString(b.length()) + " bytes)");
        }
        return b;
    }

    /** Whether per-page state is kept (false above {@link #TRACK_LIMIT} of RAM). */
    boolean tracked() {
        return tracked;
    }

    List<RamBlockSummary> summaries(int maxRunsPerBlock) {
        List<RamBlockSummary> out = new ArrayList<>();
        for (RamBlockTally b : blocks.values()) {
            out.add(b.summary(maxRunsPerBlock));
        }
        return List.copyOf(out);
    }
}
