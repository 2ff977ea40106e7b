package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.Gpa;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Optional;

/**
 * The ferry-guest binary: a flat image built from {@code src/main/guest} by vmm-core's
 * {@code guest-program} Maven profile (active when {@code /usr/bin/gcc} exists) and put on the
 * classpath as {@value #RESOURCE}. Its first 64 bytes are a header that the VMM checks before
 * loading (little-endian, as the guest reads it):
 * <pre>
 *  +0  u64 magic "FerryImg"      +8  u32 version (1)      +12 u32 header size (64)
 * +16  u64 load GPA (1 MiB)      +24 u64 entry GPA (the initial RIP)
 * +32  u64 image end GPA (the loader zero-fills from the end of the file up to here)
 * +40  u64 boot-parameters GPA   +48 u32 heartbeat port   +52 u32 status port   +56 u64 0
 * </pre>
 * The load GPA, parameter GPA and ports are compiled into the guest. {@link #parse} requires
 * them to equal {@link GuestLayout}'s, so a binary and a VMM that disagree fail here rather than
 * inside the guest. Immutable.
 */
public final class GuestProgram {
    /** Classpath resource of the flat binary. */
    public static final String RESOURCE = "/dev/ferry/core/cpu/guest/ferry-guest.bin";
    /** Why {@link #load()} can come back empty. */
    public static final String NOT_BUILT = "ferry-guest.bin is not on the classpath: vmm-core was built without the "
            + "guest-program profile, which is active only when /usr/bin/gcc exists; install gcc (it brings binutils) "
            + "and rebuild vmm-core";
    /** "FerryImg". */
    public static final long MAGIC = 0x4665727279496d67L;
    public static final int VERSION = 1;
    public static final int HEADER_BYTES = 64;
    /** The most an image can take: from the load address up to {@link GuestLayout#IMAGE_LIMIT_GPA}. */
    public static final long MAX_IMAGE_BYTES = GuestLayout.IMAGE_LIMIT_GPA - GuestLayout.IMAGE_GPA;

    private final byte[] image;
    private final long entryGpa;
    private final long imageEndGpa;

    private GuestProgram(byte[] image, long entryGpa, long imageEndGpa) {
        this.image = image;
        this.entryGpa = entryGpa;
        this.imageEndGpa = imageEndGpa;
    }

    /**
     * The binary from the classpath. The result is empty when the build did not produce it
     * ({@link #NOT_BUILT} says why). A binary that is present but fails the header checks is an
     * {@link IllegalStateException}.
     */
    public static Optional<GuestProgram> load() {
        try (InputStream in = GuestProgram.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                return Optional.empty();
            }
            byte[] bytes = in.readNBytes((int) MAX_IMAGE_BYTES + 1);
            try {
                return Optional.of(parse(bytes));
            } catch (IllegalArgumentException e) {
                throw new IllegalStateException("classpath resource " + RESOURCE + ": " + e.getMessage(), e);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading classpath resource " + RESOURCE, e);
        }
    }

    /** Checks the header of a flat image and wraps it (the array is copied). */
    public static GuestProgram parse(byte[] bytes) {
        if (bytes.length < HEADER_BYTES) {
            throw new IllegalArgumentException("ferry-guest image of " + bytes.length + " bytes is shorter than its "
                    + HEADER_BYTES + "-byte header");
        }
        if (bytes.length > MAX_IMAGE_BYTES) {
            throw new IllegalArgumentException("ferry-guest image larger than " + MAX_IMAGE_BYTES + " bytes");
        }
        ByteBuffer h = ByteBuffer.wrap(bytes, 0, HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        long magic = h.getLong(0);
        int version = h.getInt(8);
        int headerSize = h.getInt(12);
        long load = h.getLong(16);
        long entry = h.getLong(24);
        long end = h.getLong(32);
        long params = h.getLong(40);
        int heartbeat = h.getInt(48);
        int status = h.getInt(52);
        if (magic != MAGIC) {
            throw new IllegalArgumentException("not a ferry-guest image: magic 0x" + Long.toHexString(magic)
                    + ", expected 0x" + Long.toHexString(MAGIC));
        }
        if (version != VERSION || headerSize != HEADER_BYTES) {
            throw new IllegalArgumentException("ferry-guest image version " + version + " with a " + headerSize
                    + "-byte header; this Ferry loads version " + VERSION + " with " + HEADER_BYTES);
        }
        if (load != GuestLayout.IMAGE_GPA || params != GuestLayout.BOOT_PARAMS_GPA
                || heartbeat != GuestLayout.HEARTBEAT_PORT || status != GuestLayout.STATUS_PORT) {
            throw new IllegalArgumentException(String.format("ferry-guest image built for another layout: load 0x%x, "
                    + "boot parameters 0x%x, ports 0x%x/0x%x; GuestLayout has 0x%x, 0x%x, 0x%x/0x%x", load, params,
                    heartbeat, status, GuestLayout.IMAGE_GPA, GuestLayout.BOOT_PARAMS_GPA, GuestLayout.HEARTBEAT_PORT,
                    GuestLayout.STATUS_PORT));
        }
        if (end < load + bytes.length || end > GuestLayout.IMAGE_LIMIT_GPA) {
            throw new IllegalArgumentException("ferry-guest image end 0x" + Long.toHexString(end) + " is not within [0x"
                    + Long.toHexString(load + bytes.length) + ", 0x" + Long.toHexString(GuestLayout.IMAGE_LIMIT_GPA)
                    + "]");
        }
        if (entry < load + HEADER_BYTES || entry >= load + bytes.length) {
            throw new IllegalArgumentException("ferry-guest entry 0x" + Long.toHexString(entry)
                    + " lies outside the code [0x" + Long.toHexString(load + HEADER_BYTES) + ", 0x"
                    + Long.toHexString(load + bytes.length) + ")");
        }
        return new GuestProgram(bytes.clone(), entry, end);
    }

    /** The flat image (a copy). */
    public byte[] image() {
        return image.clone();
    }

    public int fileSize() {
        return image.length;
    }

    public long loadGpa() {
        return GuestLayout.IMAGE_GPA;
    }

    /** The initial RIP. */
    public long entryRip() {
        return entryGpa;
    }

    /** The initial RSP. */
    public long initialRsp() {
        return GuestLayout.STACK_TOP_GPA;
    }

    public long imageEndGpa() {
        return imageEndGpa;
    }

    /** Copies the image to {@link #loadGpa()} and zero-fills the rest up to {@link #imageEndGpa()}. */
    public void copyInto(GuestMemory memory) {
        memory.write(Gpa.of(loadGpa()), image, 0, image.length);
        long tail = imageEndGpa - (loadGpa() + image.length);
        if (tail > 0) {
            memory.fill(Gpa.of(loadGpa() + image.length), tail, (byte) 0);
        }
    }

    @Override
    public String toString() {
        return "ferry-guest v" + VERSION + " (" + image.length + " bytes at 0x" + Long.toHexString(loadGpa())
                + ", entry 0x" + Long.toHexString(entryGpa) + ")";
    }
}
