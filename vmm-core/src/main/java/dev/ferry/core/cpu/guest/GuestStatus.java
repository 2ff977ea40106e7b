package dev.ferry.core.cpu.guest;

/**
 * The values ferry-guest writes to {@link GuestLayout#STATUS_PORT} (a 32-bit OUT). It writes
 * {@link #STARTED} or {@link #RESUMED} once at entry. {@link #DONE} (the guest reached its max
 * steps) and the faults are final: the guest does nothing more and keeps reporting the same
 * value. In ring 0 it halts between reports (KVM_EXIT_HLT without an in-kernel irqchip). In ring 3
 * it reports again at once, one exit after another. Once the engine sees a final status it stops
 * running the vCPU.
 */
public enum GuestStatus {
    STARTED(0x01, "started: progress record created, counter 0"),
    RESUMED(0x02, "resumed: took up the progress record found in memory"),
    DONE(0x03, "done: the counter reached the boot parameters' max steps; nothing more will happen"),
    FAULT_PARAMS(0x81, "fault: no version-1 boot parameters at 0x1000 (magic or version)"),
    FAULT_WORKING_SET(0x82, "fault: working set base not 4 KiB aligned or below 2 MiB, or its page count 0 or too big"),
    FAULT_HEARTBEAT(0x83, "fault: pages per heartbeat is 0"),
    FAULT_PROGRESS(0x84, "fault: progress-record GPA is 0, not 4 KiB aligned, or not below the program image"),
    FAULT_RECORD(0x85, "fault: the progress record in memory has another version or seed, or is torn");

    private final int code;
    private final String meaning;

    GuestStatus(int code, String meaning) {
        this.code = code;
        this.meaning = meaning;
    }

    /** The value on the port. */
    public int code() {
        return code;
    }

    public String meaning() {
        return meaning;
    }

    public boolean isFault() {
        return (code & 0x80) != 0;
    }

    /** DONE or a fault: the guest will do nothing else. */
    public boolean isFinal() {
        return this == DONE || isFault();
    }

    /** The status with this port value; throws for a value the guest never writes. */
    public static GuestStatus of(int code) {
        for (GuestStatus s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        throw new IllegalArgumentException("ferry-guest: unknown status 0x" + Integer.toHexString(code) + " on port 0x"
                + Integer.toHexString(GuestLayout.STATUS_PORT));
    }
}
