package dev.ferry.vhostuser.check;

import dev.ferry.vhostuser.proto.VhostUserException;

/**
 * What the check does with one device type: which features it takes, which rings it drives, the
 * verified traffic of the logged phase, and a probe — one request whose being served is visible
 * in guest memory — for the rules that must see a ring stopped (GET_VRING_BASE, disable) and
 * resumed. Every buffer the device may write is poisoned before the phase's shadow is taken, so a
 * device write always changes its page.
 */
interface DeviceExercise {
    /** {@code blk} or {@code net}. */
    String type();

    /** Device feature bits to accept, out of {@code offered} (VERSION_1 and PROTOCOL_FEATURES are added). */
    long features(long offered);

    /** The number of rings driven (queue 0 first). */
    int rings();

    /** Reads what the traffic needs from the back-end before the rings start (blk: the capacity). */
    void configure(CheckFrontend frontend) throws VhostUserException;

    /** Poisons every device-writable byte the traffic and probes use; called before each shadow copy. */
    void poison();

    /**
     * The verified traffic: every request served within the timeout and its data checked; a
     * failure is a {@link CheckRule#TRAFFIC} violation in {@code ledger}. Returns requests and bytes.
     */
    long[] traffic(CheckRing[] rings, CheckLedger ledger, long timeoutMs);

    /** The ring the stop/disable/resume rules use. */
    int probeRing();

    /**
     * Adds requests on the probe ring that take the back-end a while (blk: 32 reads of a whole slot)
     * and kicks; returns how many, 0 when the device has no such request (a net ring holds buffers,
     * not work). Their data is not checked: {@link CheckRule#DRAIN} is about when they complete.
     */
    int burst(CheckRing[] rings);

    /** Adds the probe request (and kicks); returns its head on the probe ring. */
    int probe(CheckRing[] rings);

    /**
     * Waits until the probe was served (re-sending whatever must be re-sent after a ring comes
     * back) and checks its data; returns null when it was, else what went wrong.
     */
    String awaitProbe(CheckRing[] rings, int head, long timeoutMs);
}
