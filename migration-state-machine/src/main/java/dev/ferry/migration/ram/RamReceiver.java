package dev.ferry.migration.ram;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.PageResidency;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.sys.NativeMemory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * The destination half of RAM migration: parses ram v4 records and writes pages straight from
 * the stream's native chunks into guest memory. The input is hostile: block names, sizes,
 * offsets and flags are all checked before use. Incoming thread only.
 */
final class RamReceiver implements AutoCloseable {
    private final GuestMemory memory;
    private final byte[] name = new byte[255];
    private GuestRegion last;
    private long pagesLoaded;
    private boolean sizesChecked;
    /** Pages this load wrote; every other page is as it was at setup (zero unless resident). */
    private final DirtyBitmap[] touched;
    private final PageResidency residency = new PageResidency();

    RamReceiver(GuestMemory memory) {
        this.memory = memory;
        this.touched = new DirtyBitmap[memory.regions().size()];
        for (int i = 0; i < touched.length; i++) {
            touched[i] = new DirtyBitmap(memory.regions().get(i).pages());
        }
    }

    @Override
    public void close() {
        residency.close();
        for (DirtyBitmap b : touched) {
            b.close();
        }
    }

    long pagesLoaded() {
        return pagesLoaded;
    }

    void load(LoadStream in, int version) throws IOException, MigrationException {
        if (version != RamFlags.SECTION_VERSION) {
            throw new MigrationException("ram: unsupported section version " + version + " (expected 4)");
        }
        while (true) {
            long record = in.getBe64();
            int flags = (int) (record & RamFlags.PAGE_MASK);
            long offset = record & ~RamFlags.PAGE_MASK;
            if ((flags & RamFlags.MEM_SIZE) != 0) {
                loadSizes(in, offset);
                flags &= ~RamFlags.MEM_SIZE;
            }
            if ((flags & RamFlags.ZERO) != 0) {
                long host = page(in, flags, offset);
                int fill = in.getU8();
                long page = offset >>> DirtyBitmap.PAGE_SHIFT;
                // Skip pages that are already zero without touching them: a page neither written
                // by this load nor resident before it is a hole in the memfd.
                boolean mayHoldData = touched[last.index()].get(page) || residency.mayHoldData(last, page);
                if (fill != 0 || (mayHoldData && !NativeMemory.isZero(host, RamFlags.PAGE_SIZE))) {
                    NativeMemory.fill(host, RamFlags.PAGE_SIZE, (byte) fill);
                    touched[last.index()].set(page);
                }
                pagesLoaded++;
                flags &= ~(RamFlags.ZERO | RamFlags.CONTINUE);
            } else if ((flags & RamFlags.PAGE) != 0) {
                long host = page(in, flags, offset);
                in.getNative(host, RamFlags.PAGE_SIZE);
                touched[last.index()].set(offset >>> DirtyBitmap.PAGE_SHIFT);
                pagesLoaded++;
                flags &= ~(RamFlags.PAGE | RamFlags.CONTINUE);
            }
            if ((flags & RamFlags.EOS) != 0) {
                flags &= ~RamFlags.EOS;
                if (flags != 0) {
                    throw new MigrationException(String.format("ram: unknown flags 0x%x with EOS", flags));
                }
                return;
            }
            if ((flags & RamFlags.MULTIFD_FLUSH) != 0) {
                flags &= ~RamFlags.MULTIFD_FLUSH;
            }
            if (flags != 0) {
                throw new MigrationException(String.format("ram: unsupported record flags 0x%x at stream offset %d",
                        flags, in.bytesRead() - 8));
            }
        }
    }

    private void loadSizes(LoadStream in, long total) throws IOException, MigrationException {
        if (total != memory.totalSize()) {
            throw new MigrationException("ram: the stream carries " + total + " bytes of RAM, this VM has "
                    + memory.totalSize());
        }
        long seen = 0;
        while (seen < total) {
            GuestRegion r = block(in);
            long len = in.getBe64();
            if (len != r.size()) {
                throw new MigrationException("ram: block '" + r.name() + "' is " + len + " bytes in the stream, "
                        + r.size() + " here");
            }
            seen += len;
        }
        sizesChecked = true;
    }

    private long page(LoadStream in, int flags, long offset) throws IOException, MigrationException {
        if (!sizesChecked) {
            throw new MigrationException("ram: page record before the MEM_SIZE record");
        }
        GuestRegion r;
        if ((flags & RamFlags.CONTINUE) != 0) {
            if (last == null) {
                throw new MigrationException("ram: CONTINUE record with no previous block");
            }
            r = last;
        } else {
            r = block(in);
            last = r;
        }
        if (offset < 0 || offset > r.size() - RamFlags.PAGE_SIZE) { // negative: bit 63 set in the stream
            throw new MigrationException("ram: page offset 0x" + Long.toHexString(offset) + " outside block '"
                    + r.name() + "' of " + r.size() + " bytes");
        }
        return r.hostAddress(offset);
    }

    private GuestRegion block(LoadStream in) throws IOException, MigrationException {
        int len = in.getU8();
        if (len == 0) {
            throw new MigrationException("ram: empty RAM block name");
        }
        in.getBytes(name, 0, len);
        for (GuestRegion r : memory.regions()) {
            byte[] id = r.name().getBytes(StandardCharsets.UTF_8);
            if (id.length == len && java.util.Arrays.equals(id, 0, len, name, 0, len)) {
                return r;
            }
        }
        throw new MigrationException("ram: the stream has RAM block '" + dev.ferry.core.migration.StreamText.escape(name, len)
                + "', which this VM lacks");
    }
}
