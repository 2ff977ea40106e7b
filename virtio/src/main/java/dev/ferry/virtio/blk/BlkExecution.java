package dev.ferry.virtio.blk;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemoryException;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.Segment;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One virtio-blk request, parsed and carried out on an I/O thread. Every value comes from the
 * guest and is checked before use: the header must be readable and the status byte writable; the
 * sector range must lie inside the image; data lengths must be whole sectors; DISCARD and
 * WRITE_ZEROES carry exactly one 16-byte range. A request that breaks these completes with IOERR
 * (QEMU's answer to a bad range) or UNSUPP (an unknown type) — never an access outside the image
 * or outside guest RAM.
 */
final class BlkExecution {
    private final String id;
    private final DescriptorChain chain;
    private final DeviceMemory memory;
    private final BlkImage image;
    private final BlkOptions options;
    private final boolean writeback;
    private int type = -1;
    private long bytesRead;
    private long bytesWritten;
    private int deviceWritten = 1;
    private String ioError;

    BlkExecution(String id, DescriptorChain chain, DeviceMemory memory, BlkImage image, BlkOptions options,
                 boolean writeback) {
        this.id = id;
        this.chain = chain;
        this.memory = memory;
        this.image = image;
        this.options = options;
        this.writeback = writeback;
    }

    int type() {
        return type;
    }

    boolean isWrite() {
        return type == BlkRequest.T_OUT || type == BlkRequest.T_WRITE_ZEROES || type == BlkRequest.T_DISCARD
                || type == BlkRequest.T_FLUSH;
    }

    long bytesRead() {
        return bytesRead;
    }

    long bytesWritten() {
        return bytesWritten;
    }

    /** Bytes the device wrote into the chain (the used element's len): data for IN and GET_ID, plus the status. */
    int deviceWritten() {
        return deviceWritten;
    }

    /** The image error behind an IOERR, or null when the request itself was bad. */
    String ioError() {
        return ioError;
    }

    /** Carries the request out; returns its status byte. */
    int run() {
        if (chain.readableBytes() < BlkRequest.HEADER || chain.writableBytes() < 1) {
            return BlkRequest.S_IOERR; // QEMU: virtio_error "missing headers"; the caller checked already
        }
        byte[] h;
        try {
            h = readHeader(chain.readable(), memory);
        } catch (GuestMemoryException e) {
            return BlkRequest.S_IOERR;
        }
        java.nio.ByteBuffer hb = java.nio.ByteBuffer.wrap(h).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        type = hb.getInt(0);
        long sector = hb.getLong(8);
        List<Segment> out = dataAfterHeader(chain.readable());
        List<Segment> in = dataBeforeStatus(chain.writable());
        try {
            return switch (type) {
                case BlkRequest.T_IN -> read(sector, in);
                case BlkRequest.T_OUT -> write(sector, out);
                case BlkRequest.T_FLUSH -> flush();
                case BlkRequest.T_GET_ID -> getId(in);
                case BlkRequest.T_DISCARD, BlkRequest.T_WRITE_ZEROES -> zeroes(out);
                default -> BlkRequest.S_UNSUPP;
            };
        } catch (IOException e) {
            ioError = e.getMessage();
            return BlkRequest.S_IOERR;
        } catch (GuestMemoryException e) {
            return BlkRequest.S_IOERR;
        }
    }

    private int read(long sector, List<Segment> in) throws IOException {
        long len = total(in);
        if (!rangeOk(sector, len)) {
            return BlkRequest.S_IOERR;
        }
        long off = sector * BlkRequest.SECTOR;
        for (Segment s : in) {
            image.read(memory, off, s.gpa(), (int) s.length());
            off += s.length();
        }
        bytesRead += len;
        deviceWritten = (int) len + 1;
        return BlkRequest.S_OK;
    }

    private int write(long sector, List<Segment> out) throws IOException {
        long len = total(out);
        if (options.readOnly() || !rangeOk(sector, len)) {
            return BlkRequest.S_IOERR;
        }
        long off = sector * BlkRequest.SECTOR;
        for (Segment s : out) {
            image.write(memory, off, s.gpa(), (int) s.length());
            off += s.length();
        }
        bytesWritten += len;
        if (!writeback) {
            image.flush(); // writethrough: a completed write is durable
        }
        return BlkRequest.S_OK;
    }

    private int flush() throws IOException {
        image.flush();
        return BlkRequest.S_OK;
    }

    private int getId(List<Segment> in) {
        byte[] serial = java.util.Arrays.copyOf(options.serial().getBytes(StandardCharsets.US_ASCII), BlkRequest.ID_BYTES);
        long room = Math.min(total(in), BlkRequest.ID_BYTES);
        int at = 0;
        for (Segment s : in) {
            int n = (int) Math.min(s.length(), room - at);
            if (n <= 0) {
                break;
            }
            memory.write(s.gpa(), serial, at, n);
            at += n;
        }
        deviceWritten = at + 1;
        return BlkRequest.S_OK;
    }

    private int zeroes(List<Segment> out) throws IOException {
        long len = total(out);
        if (options.readOnly() || len == 0 || len % BlkRequest.RANGE != 0) {
            return BlkRequest.S_IOERR;
        }
        if (len > BlkConfig.MAX_DISCARD_SEG * BlkRequest.RANGE) {
            return BlkRequest.S_UNSUPP; // more ranges than max_discard_seg / max_write_zeroes_seg
        }
        byte[] r = new byte[BlkRequest.RANGE];
        int at = 0;
        for (Segment s : out) {
            memory.read(s.gpa(), r, at, (int) s.length());
            at += (int) s.length();
        }
        java.nio.ByteBuffer rb = java.nio.ByteBuffer.wrap(r).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        long sector = rb.getLong(0);
        long sectors = Integer.toUnsignedLong(rb.getInt(8));
        int flags = rb.getInt(12);
        if (sectors > BlkConfig.MAX_DISCARD_SECTORS || !rangeOk(sector, sectors * BlkRequest.SECTOR)
                || (flags & ~BlkRequest.WRITE_ZEROES_UNMAP) != 0) {
            return BlkRequest.S_IOERR;
        }
        image.writeZeroes(sector * BlkRequest.SECTOR, sectors * BlkRequest.SECTOR);
        bytesWritten += sectors * BlkRequest.SECTOR;
        return BlkRequest.S_OK;
    }

    private boolean rangeOk(long sector, long bytes) {
        if (bytes % BlkRequest.SECTOR != 0 || sector < 0 || bytes < 0) {
            return false;
        }
        long sectors = image.size() / BlkRequest.SECTOR;
        return sector <= sectors && bytes / BlkRequest.SECTOR <= sectors - sector;
    }

    private static long total(List<Segment> segs) {
        long t = 0;
        for (Segment s : segs) {
            t += s.length();
        }
        return t;
    }

    /**
     * The 16-byte header from the first readable bytes, however the driver split it. Read by
     * segment, not through {@link DescriptorChain#reader()}: a request restored from a migration
     * stream (parked on the source, retried here) has no reader.
     */
    private static byte[] readHeader(List<Segment> readable, DeviceMemory memory) {
        byte[] h = new byte[BlkRequest.HEADER];
        int at = 0;
        for (Segment s : readable) {
            if (at == h.length) {
                break;
            }
            int n = (int) Math.min(s.length(), h.length - at);
            memory.read(s.gpa(), h, at, n);
            at += n;
        }
        return h;
    }

    /** The readable segments past the 16-byte header (a header split over descriptors included). */
    private static List<Segment> dataAfterHeader(List<Segment> readable) {
        List<Segment> out = new ArrayList<>();
        long skip = BlkRequest.HEADER;
        for (Segment s : readable) {
            if (skip >= s.length()) {
                skip -= s.length();
                continue;
            }
            out.add(new Segment(s.gpa() + skip, s.length() - skip));
            skip = 0;
        }
        return out;
    }

    /** The writable segments without the final status byte. */
    private static List<Segment> dataBeforeStatus(List<Segment> writable) {
        List<Segment> in = new ArrayList<>(writable);
        Segment last = in.remove(in.size() - 1);
        if (last.length() > 1) {
            in.add(new Segment(last.gpa(), last.length() - 1));
        }
        return in;
    }
}
