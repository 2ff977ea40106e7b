package dev.ferry.core.cpu.soft;

/**
 * The verdict on one working-set page (see {@link SoftCpuEngine#verifyPage}).
 *
 * @param page    working-set page index (0 is the page at the working set's base)
 * @param gpa     its guest-physical address
 * @param status  {@link Status#ZERO}: never written; {@link Status#WRITTEN}: a valid soft page;
 *                {@link Status#CORRUPT}: neither
 * @param stamp   the stamp in the header (as read; meaningless when zero or corrupt at offset 0)
 * @param vcpu    the vCPU index in the header (as read)
 * @param problem what is wrong, for a corrupt page; null otherwise
 */
public record PageCheck(long page, long gpa, Status status, long stamp, long vcpu, String problem) {
    public enum Status { ZERO, WRITTEN, CORRUPT }

    /** Zero or correctly written. */
    public boolean valid() {
        return status != Status.CORRUPT;
    }
}
