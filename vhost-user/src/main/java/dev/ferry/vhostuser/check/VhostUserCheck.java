package dev.ferry.vhostuser.check;

import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.virtio.Virtio;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code ferry vhost-user check}: holds a vhost-user back-end to the promises a live migration
 * depends on ({@link CheckRule}). The check is a front-end of its own over a guest memory it owns
 * ({@link CheckGuest}) with its own driver-side rings, and drives the back-end through QEMU's
 * sequence: negotiation, memory table, rings, migration logging, real verified traffic, disable,
 * GET_VRING_BASE and a restored ring; then malformed requests on separate connections. Each phase
 * compares the pages the back-end changed with the pages its shared log names.
 *
 * <p>Every reply is awaited at most the reply timeout and every request at most the serve timeout,
 * so a back-end that hangs costs seconds and is named, never a hung check. Runs on the caller's
 * thread; the back-end is assumed to serve one front-end at a time (qemu-storage-daemon does), so
 * connections are made one after another.
 */
public final class VhostUserCheck {
    /**
     * @param socket         the back-end's UNIX socket
     * @param type           {@code blk} or {@code net}
     * @param replyTimeoutMs how long a reply may take
     * @param serveTimeoutMs how long a request on a ring may take
     * @param quietMs        how long a stopped or disabled ring is watched for writes
     * @param skip           rules not to exercise: only {@link CheckRule#DISABLE} and
     *                       {@link CheckRule#MALFORMED}, whose probes a back-end may not survive, and
     *                       {@link CheckRule#DRAIN}, whose finding depends on a race with the back-end
     */
    public record Options(Path socket, String type, long replyTimeoutMs, long serveTimeoutMs, long quietMs,
                          Set<CheckRule> skip) {
        public Options {
            skip = skip.isEmpty() ? EnumSet.noneOf(CheckRule.class) : EnumSet.copyOf(skip);
            for (CheckRule r : skip) {
                if (r != CheckRule.DISABLE && r != CheckRule.MALFORMED && r != CheckRule.DRAIN) {
                    throw new IllegalArgumentException("rule '" + r.id() + "' cannot be skipped; only disable, drain"
                            + " and malformed can");
                }
            }
            if (!type.equals("blk") && !type.equals("net")) {
                throw new IllegalArgumentException("type '" + type + "': blk or net");
            }
            if (replyTimeoutMs <= 0 || serveTimeoutMs <= 0 || quietMs <= 0) {
                throw new IllegalArgumentException("timeouts must be positive");
            }
        }

        public static Options of(Path socket, String type) {
            return new Options(socket, type, 2_000, 2_000, 300, Set.of());
        }

        public Options skipping(Set<CheckRule> rules) {
            return new Options(socket, type, replyTimeoutMs, serveTimeoutMs, quietMs, rules);
        }
    }

    /** Protocol features the check uses when offered. */
    static final long WANTED_PROTOCOL = VhostUser.bit(VhostUser.PF_MQ) | VhostUser.bit(VhostUser.PF_LOG_SHMFD)
            | VhostUser.bit(VhostUser.PF_REPLY_ACK) | VhostUser.bit(VhostUser.PF_CONFIG);

    private static final String SKIPPED = "skipped on request (--skip)";

    private final Options options;
    private final CheckLedger ledger = new CheckLedger();
    private long offered = -1;
    private long protocol = -1;
    private VhostUserCheckReport.Traffic traffic = VhostUserCheckReport.Traffic.NONE;

    private VhostUserCheck(Options options) {
        this.options = options;
    }

    public static VhostUserCheckReport run(Options options) {
        return new VhostUserCheck(options).run();
    }

    private VhostUserCheckReport run() {
        long start = System.nanoTime();
        String aborted = null;
        // blk: 64 KiB slots, so the drain rule's reads keep the back-end busy long enough to be caught mid-way
        try (CheckGuest guest = new CheckGuest(options.type().equals("blk") ? 64 << 10 : 4096)) {
            DeviceExercise device = options.type().equals("blk") ? new BlkExercise(guest) : new NetExercise(guest);
            try (CheckFrontend fe = CheckFrontend.connect(options.socket(), options.replyTimeoutMs())) {
                try {
                    session(fe, guest, device);
                } finally {
                    ledger.pass(CheckRule.REPLY, fe.replies());
                }
            } catch (VhostUserException e) {
                aborted = classify(e);
            } catch (IllegalStateException e) {
                ledger.violation(CheckRule.TRAFFIC, "the back-end broke the ring: " + e.getMessage());
                aborted = "stopped: the back-end broke the ring: " + e.getMessage();
            }
            if (options.skip().contains(CheckRule.MALFORMED)) {
                ledger.skip(CheckRule.MALFORMED, SKIPPED);
            } else if (offered >= 0) {
                new MalformedProbe(options, ledger, device.rings()).run();
            }
        }
        return new VhostUserCheckReport(options.socket().toString(), options.type(), offered, protocol,
                ledger.results(aborted != null ? "not reached: the check stopped" : null), traffic, aborted,
                System.nanoTime() - start);
    }

    /** A reply that broke the reply rules is that rule's violation; anything else stops the check. */
    private String classify(VhostUserException e) {
        String m = e.getMessage();
        if (e instanceof CheckFrontend.ReplyViolation || m.contains("acknowledged it with status")
                || m.contains("a reply's flags") || m.contains("a reply names")) {
            ledger.violation(CheckRule.REPLY, m);
        }
        return "stopped: " + m;
    }

    private void session(CheckFrontend fe, CheckGuest guest, DeviceExercise device) throws VhostUserException {
        offered = fe.getFeatures();
        ledger.expect(CheckRule.NEGOTIATION, VhostUser.has(offered, Virtio.F_VERSION_1),
                "GET_FEATURES 0x" + Long.toHexString(offered) + " lacks VERSION_1 (bit 32)");
        if (!VhostUser.has(offered, VhostUser.F_PROTOCOL_FEATURES)) {
            ledger.violation(CheckRule.NEGOTIATION, "GET_FEATURES 0x" + Long.toHexString(offered)
                    + " lacks PROTOCOL_FEATURES (bit 30)");
            throw new VhostUserException("the back-end offers no protocol features");
        }
        protocol = fe.getProtocolFeatures();
        boolean migratable = VhostUser.has(offered, VhostUser.F_LOG_ALL) && VhostUser.has(protocol, VhostUser.PF_LOG_SHMFD);
        List<String> lacks = new ArrayList<>();
        if (!VhostUser.has(offered, VhostUser.F_LOG_ALL)) {
            lacks.add("feature LOG_ALL (26) not offered");
        }
        if (!VhostUser.has(protocol, VhostUser.PF_LOG_SHMFD)) {
            lacks.add("protocol feature LOG_SHMFD (1) not offered");
        }
        ledger.expect(CheckRule.MIGRATABLE, migratable, "not migratable: " + String.join(", ", lacks));
        if (!VhostUser.has(protocol, VhostUser.PF_REPLY_ACK)) {
            ledger.note(CheckRule.REPLY, "REPLY_ACK not offered: only replies with data were checked");
        }
        fe.setProtocolFeatures(WANTED_PROTOCOL);
        fe.request(VhostUser.SET_OWNER, new byte[0]);
        if (fe.hasProtocol(VhostUser.PF_MQ)) {
            long queues = fe.connection().getU64(VhostUser.GET_QUEUE_NUM);
            ledger.expect(CheckRule.NEGOTIATION, queues >= device.rings() / (device.type().equals("net") ? 2 : 1),
                    "GET_QUEUE_NUM says " + queues + " queues; the check drives " + device.rings() + " rings");
        }
        long features = VhostUser.bit(Virtio.F_VERSION_1) | VhostUser.bit(VhostUser.F_PROTOCOL_FEATURES)
                | device.features(offered);
        fe.request(VhostUser.SET_FEATURES, Payloads.u64(features));
        ledger.pass(CheckRule.NEGOTIATION);
        device.configure(fe);
        fe.setMemTable(guest);

        CheckRing[] rings = new CheckRing[device.rings()];
        try {
            for (int q = 0; q < rings.length; q++) {
                rings[q] = new CheckRing(guest, q, 0);
                fe.startRing(rings[q], 0, false);
                fe.enable(q, true);
            }
            exercise(fe, guest, device, rings, features, migratable);
        } finally {
            for (CheckRing r : rings) {
                if (r != null) {
                    r.close();
                }
            }
        }
    }

    private void exercise(CheckFrontend fe, CheckGuest guest, DeviceExercise device, CheckRing[] rings, long features,
                          boolean migratable) throws VhostUserException {
        long t = options.serveTimeoutMs();
        if (migratable) {
            fe.startLogging(features, rings);
            guest.harvestLog();
        } else {
            ledger.skip(CheckRule.DIRTY_LOG, "not migratable: the back-end has no shared dirty log");
        }
        // logged traffic
        device.poison();
        guest.takeShadow();
        long[] moved = device.traffic(rings, ledger, t);
        long[] pages = migratable ? compareLog(guest, "traffic") : new long[3];
        traffic = new VhostUserCheckReport.Traffic(moved[0], moved[1], pages[0], pages[1], pages[2]);
        if (ledger.violated(CheckRule.TRAFFIC)) {
            String why = "the ring traffic failed";
            ledger.skip(CheckRule.DISABLE, why);
            ledger.skip(CheckRule.VRING_BASE, why);
            ledger.skip(CheckRule.RESUME, why);
            ledger.skip(CheckRule.DRAIN, why);
            return;
        }
        CheckRing probeRing = rings[device.probeRing()];
        if (options.skip().contains(CheckRule.DISABLE)) {
            ledger.skip(CheckRule.DISABLE, SKIPPED);
        } else {
            disable(fe, guest, device, rings, probeRing, migratable);
        }
        vringBase(fe, guest, device, rings, probeRing, migratable);
        if (options.skip().contains(CheckRule.DRAIN)) {
            ledger.skip(CheckRule.DRAIN, SKIPPED);
        } else if (ledger.violated(CheckRule.VRING_BASE) || ledger.violated(CheckRule.RESUME)) {
            ledger.skip(CheckRule.DRAIN, "the ring did not stop and resume as it must");
        } else {
            drain(fe, guest, device, rings, probeRing, migratable);
        }
    }

    /** Rounds of the drain probe: whether a round catches a back-end mid-request depends on timing. */
    static final int DRAIN_ROUNDS = 6;

    /**
     * GET_VRING_BASE right after a burst of requests was kicked: at the reply, every request the
     * returned index counts must be completed, and nothing may be written afterwards; QEMU takes
     * the index into the device state and re-reads used.idx from RAM, so a request counted but not
     * completed is lost in a migration. The ring is restored after each round and what was not
     * consumed must then complete.
     */
    private void drain(CheckFrontend fe, CheckGuest guest, DeviceExercise device, CheckRing[] rings,
                       CheckRing probeRing, boolean migratable) throws VhostUserException {
        int q = probeRing.index();
        for (int round = 1; round <= DRAIN_ROUNDS; round++) {
            try {
                if (!drainRound(fe, guest, device, rings, probeRing, migratable, round)) {
                    return;
                }
            } catch (VhostUserException e) {
                // the connection broke mid-round: the back-end failed this rule, and nothing follows it
                ledger.violation(CheckRule.DRAIN, "round " + round + ": " + e.getMessage());
                return;
            }
        }
    }

    /** One drain round; false when it failed and the ring cannot go on. */
    private boolean drainRound(CheckFrontend fe, CheckGuest guest, DeviceExercise device, CheckRing[] rings,
                               CheckRing probeRing, boolean migratable, int round) throws VhostUserException {
        int q = probeRing.index();
        device.poison();
        int before = probeRing.usedIdx();
        int n = device.burst(rings);
        if (n == 0) {
            ledger.skip(CheckRule.DRAIN, "a " + device.type() + " ring holds buffers, not requests in flight");
            return false;
        }
        int base = fe.getVringBase(q);
        int usedAtReply = probeRing.usedIdx();
        guest.takeShadow();
        sleep(options.quietMs());
        BitSet late = deviceWrites(guest);
        int usedLater = probeRing.usedIdx();
        int consumed = (base - before) & 0xffff;
        int completed = (usedAtReply - before) & 0xffff;
        boolean held = consumed <= n && completed == consumed && late.isEmpty();
        ledger.expect(CheckRule.DRAIN, held, "round " + round + ": GET_VRING_BASE(" + q + ") with " + n
                + " requests kicked returned " + base + " (" + consumed + " consumed) while " + completed
                + " were completed at the reply and " + ((usedLater - before) & 0xffff) + " after "
                + options.quietMs() + " ms" + (late.isEmpty() ? "" : "; written after the reply: "
                + CheckGuest.describe(late, 6)));
        ledger.note(CheckRule.DRAIN, "round " + round + ": " + consumed + " of " + n + " consumed at GET_VRING_BASE");
        if (!held) {
            return false; // the ring's state is no longer one a restore can continue from
        }
        fe.startRing(probeRing, base & 0xffff, migratable);
        fe.enable(q, true);
        probeRing.kick();
        while (probeRing.queue().inFlight() > 0) {
            if (probeRing.awaitUsed(options.serveTimeoutMs()) == null) {
                ledger.violation(CheckRule.DRAIN, "round " + round + ": after SET_VRING_BASE(" + base + ") "
                        + probeRing.queue().inFlight() + " requests not consumed before the stop were never"
                        + " served");
                return false;
            }
        }
        return true;
    }

    /** SET_VRING_ENABLE(0): a kicked request changes no page; SET_VRING_ENABLE(1): it is served. */
    private void disable(CheckFrontend fe, CheckGuest guest, DeviceExercise device, CheckRing[] rings,
                         CheckRing probeRing, boolean migratable) throws VhostUserException {
        int q = probeRing.index();
        long t = options.serveTimeoutMs();
        if (rings.length > 1) {
            ledger.note(CheckRule.DISABLE, "only ring " + q + " was disabled; the other rings' completions were not held"
                    + " against it (a disabled TX ring may still be processed)");
        }
        fe.enable(q, false);
        device.poison();
        guest.takeShadow();
        int used = probeRing.usedIdx();
        int head = device.probe(rings);
        sleep(options.quietMs());
        BitSet written = probeWrites(guest, q, rings.length);
        ledger.expect(CheckRule.DISABLE, written.isEmpty() && probeRing.usedIdx() == used,
                "ring " + q + " disabled: a request kicked then changed " + written.cardinality() + " page(s): "
                        + CheckGuest.describe(written, 6) + "; used.idx " + used + " -> " + probeRing.usedIdx());
        fe.enable(q, true);
        String why = device.awaitProbe(rings, head, t);
        ledger.expect(CheckRule.DISABLE, why == null, "ring " + q + " enabled again: " + why);
        if (migratable) {
            compareLog(guest, "disable/enable");
        }
    }

    /** GET_VRING_BASE stops the ring and returns the index consumed; SET_VRING_BASE resumes there. */
    private void vringBase(CheckFrontend fe, CheckGuest guest, DeviceExercise device, CheckRing[] rings,
                           CheckRing probeRing, boolean migratable) throws VhostUserException {
        int q = probeRing.index();
        long t = options.serveTimeoutMs();
        // QEMU stops every ring of the device; the probe ring served everything it was given, so its
        // index is its avail.idx; another ring's is what it completed (read once it stopped).
        int[] bases = new int[rings.length];
        for (CheckRing ring : rings) {
            int expected = ring.queue().availIdx();
            bases[ring.index()] = fe.getVringBase(ring.index());
            if (ring != probeRing) {
                expected = ring.usedIdx();
            }
            ledger.expect(CheckRule.VRING_BASE, bases[ring.index()] == expected, "GET_VRING_BASE(" + ring.index()
                    + ") returned " + bases[ring.index()] + "; the back-end consumed " + expected
                    + " available entries and completed them all");
        }
        // from the last reply on, the device must not touch guest memory (the final RAM pass follows)
        device.poison();
        guest.takeShadow();
        int used = probeRing.usedIdx();
        int head = device.probe(rings);
        sleep(options.quietMs());
        BitSet written = deviceWrites(guest);
        ledger.expect(CheckRule.VRING_BASE, written.isEmpty() && probeRing.usedIdx() == used,
                "after GET_VRING_BASE a request kicked on ring " + q + " was served: " + written.cardinality()
                        + " page(s) changed (" + CheckGuest.describe(written, 6) + "), used.idx " + used + " -> "
                        + probeRing.usedIdx());

        // restore at those indices: the pending request is served, nothing earlier again
        for (CheckRing ring : rings) {
            fe.startRing(ring, bases[ring.index()] & 0xffff, migratable);
        }
        for (CheckRing ring : rings) {
            fe.enable(ring.index(), true);
        }
        String why = device.awaitProbe(rings, head, t);
        int base = bases[q];
        ledger.expect(CheckRule.RESUME, why == null, "ring " + q + " restored with SET_VRING_BASE(" + base + "): " + why);
        if (why == null) {
            sleep(options.quietMs() / 3);
            int after = probeRing.usedIdx();
            ledger.expect(CheckRule.RESUME, after == ((used + 1) & 0xffff), "ring " + q + " restored with"
                    + " SET_VRING_BASE(" + base + "): used.idx went from " + used + " to " + after + " for one request");
        }
        if (migratable) {
            compareLog(guest, "stop/resume");
        }
    }

    /** Changed pages the back-end (not the check) wrote since the shadow was taken. */
    private static BitSet deviceWrites(CheckGuest guest) {
        BitSet changed = guest.changedPages();
        for (int p = changed.nextSetBit(0); p >= 0; p = changed.nextSetBit(p + 1)) {
            if (CheckGuest.driverPage(p)) {
                changed.clear(p);
            }
        }
        return changed;
    }

    /**
     * What the back-end wrote that only serving ring {@code q} could have written: every device
     * page except the other rings' used rings (a disabled RX ring does not stop TX completions).
     */
    private static BitSet probeWrites(CheckGuest guest, int q, int rings) {
        BitSet written = deviceWrites(guest);
        for (int other = 0; other < rings; other++) {
            if (other != q) {
                written.clear((int) (CheckGuest.queue(other, 0).usedGpa() >>> 12));
            }
        }
        return written;
    }

    /** Holds the pages the back-end wrote since the shadow against its log; returns {written, logged, missing}. */
    private long[] compareLog(CheckGuest guest, String phase) {
        BitSet written = deviceWrites(guest);
        BitSet logged = guest.harvestLog();
        BitSet missing = (BitSet) written.clone();
        missing.andNot(logged);
        if (written.isEmpty()) {
            ledger.note(CheckRule.DIRTY_LOG, phase + ": the back-end changed no page");
        }
        ledger.expect(CheckRule.DIRTY_LOG, missing.isEmpty(), String.format(Locale.ROOT,
                "%s: %d of %d page(s) the back-end wrote are not in its log: %s", phase, missing.cardinality(),
                written.cardinality(), CheckGuest.describe(missing, 8)));
        return new long[] {written.cardinality(), logged.cardinality(), missing.cardinality()};
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** A duration for reports: 850 us, 12.3 ms, 2.41 s. */
    public static String duration(long nanos) {
        if (nanos < 1_000_000) {
            return String.format(Locale.ROOT, "%d us", nanos / 1000);
        }
        if (nanos < 1_000_000_000) {
            return String.format(Locale.ROOT, "%.1f ms", nanos / 1e6);
        }
        return String.format(Locale.ROOT, "%.2f s", nanos / 1e9);
    }
}
