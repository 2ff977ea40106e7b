package dev.ferry.core.sys;

/**
 * The kernel's ioctl number encoding ({@code include/uapi/asm-generic/ioctl.h}):
 * <pre>
 *  31   30 29            16 15        8 7          0
 * +-------+----------------+-----------+------------+
 * |  dir  |      size      |   type    |     nr     |
 * +-------+----------------+-----------+------------+
 * </pre>
 * dir: 0 none, 1 write (user to kernel), 2 read, 3 both.
 */
public final class Ioctl {
    public static final int NONE = 0;
    public static final int WRITE = 1;
    public static final int READ = 2;

    private Ioctl() {
    }

    public static long ioc(int dir, int type, int nr, int size) {
        if (size < 0 || size >= (1 << 14)) {
            throw new IllegalArgumentException("ioctl size out of range: " + size);
        }
        return ((long) dir << 30 | (long) size << 16 | (long) (type & 0xff) << 8 | (nr & 0xff)) & 0xffffffffL;
    }

    public static long io(int type, int nr) {
        return ioc(NONE, type, nr, 0);
    }

    public static long ior(int type, int nr, int size) {
        return ioc(READ, type, nr, size);
    }

    public static long iow(int type, int nr, int size) {
        return ioc(WRITE, type, nr, size);
    }

    public static long iowr(int type, int nr, int size) {
        return ioc(READ | WRITE, type, nr, size);
    }
}
