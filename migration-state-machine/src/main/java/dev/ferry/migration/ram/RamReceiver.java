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

    /** The multifd channels when the capability is on (then pages never come in the main stream). */
    private MultifdReceive multifd;
    private final byte[][] ids;

    RamReceiver(GuestMemory memory) {
        this.memory = memory;
        this.touched = new DirtyBitmap[memory.regions().size()];
        this.ids = new byte[touched.length][];
        for (int i = 0; i < touched.length; i++) {
            touched[i] = new DirtyBitmap(memory.regions().get(i).pages());
            ids[i] = memory.regions().get(i).name().getBytes(StandardCharsets.UTF_8);
        }
    }

    /** Hands the pages to multifd channels, which start now. */
    void useMultifd(java.util.List<MultifdReceive.Incoming> channels, java.util.function.Consumer<String> onFailure) {
        multifd = MultifdReceive.start(channels, this, onFailure);
    }

    MultifdReceive multifd() {
        return multifd;
    }

    private void mainStreamPage(LoadStream in) throws MigrationException {
        if (multifd != null) {
            throw new MigrationException("ram: a page record in the main stream at offset " + (in.bytesRead() - 8)
                    + ", but multifd is on here: turn the multifd capability on at the source too");
        }
    }

    /** The RAM block named by {@code name[0..len)}, or null. Any thread. */
    GuestRegion regionNamed(byte[] name, int len) {
        for (int i = 0; i < ids.length; i++) {
            if (ids[i].length == len && java.util.Arrays.equals(ids[i], 0, len, name, 0, len)) {
                return memory.regions().get(i);
            }
        }
        return null;
    }

    /** Records that this load wrote {@code page} of {@code r}. Any thread (the bitmap is atomic). */
    void markLoaded(GuestRegion r, long page) {
        touched[r.index()].set(page);
    }

    /**
     * A ZERO record (or a multifd zero page): fills the page with {@code fill} unless it is already
     * zero. A page neither written by this load nor resident before it is a hole in the memfd and
     * is left untouched. Any thread, with a residency of its own.
     */
    void loadZero(GuestRegion r, long page, int fill, PageResidency residency) {
        long host = r.hostAddress(page << DirtyBitmap.PAGE_SHIFT);
        boolean mayHoldData = touched[r.index()].get(page) || residency.mayHoldData(r, page);
        if (fill != 0 || (mayHoldData && !NativeMemory.isZero(host, RamFlags.PAGE_SIZE))) {
            NativeMemory.fill(host, RamFlags.PAGE_SIZE, (byte) fill);
            touched[r.index()].set(page);
        }
    }

    @Override
    public void close() {
        if (multifd != null) {
            multifd.close();
        }
        residency.close();
        for (DirtyBitmap b : touched) {
            b.close();
        }
    }

    long pagesLoaded() {
        return pagesLoaded + (multifd == null ? 0 : multifd.pagesLoaded());
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
                mainStreamPage(in);
                page(in, flags, offset);
                int fill = in.getU8();
                loadZero(last, offset >>> DirtyBitmap.PAGE_SHIFT, fill, residency);
                pagesLoaded++;
                flags &= ~(RamFlags.ZERO | RamFlags.CONTINUE);
            } else if ((flags & RamFlags.PAGE) != 0) {
                mainStreamPage(in);
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
                if (multifd == null) {
                    throw new MigrationException("ram: the source sends RAM over multifd channels (a MULTIFD_FLUSH"
                            + " record); turn the multifd capability on here too, with the same multifd-channels");
                }
                multifd.sync();
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
        GuestRegion r = regionNamed(name, len);
        if (r != null) {
            return r;
        }
        throw new MigrationException("ram: the stream has RAM block '" + dev.ferry.core.migration.StreamText.escape(name, len)
                + "', which this VM lacks");
    }
}
