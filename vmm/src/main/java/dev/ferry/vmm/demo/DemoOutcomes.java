package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.qmp.QmpClient;

import java.util.ArrayList;
import java.util.List;

/** What the demo proved, per device: filled by {@link DemoCommand}, printed by {@link DemoReport}. */
final class DemoOutcomes {
    private DemoOutcomes() {
    }

    /**
     * Reads each disk's verdict: on the source (its image against what its guest saw acknowledged,
     * what its drain completed at stop) and, after a completed migration, on the destination (the
     * image again, and that the guest's I/O continued from where the source stopped).
     */
    static void disks(Outcome o, QmpClient vmm, JsonNode verify, boolean source) throws Exception {
        JsonNode devs = vmm.execute("x-ferry-devices", null).path("devices");
        for (JsonNode v : verify.path("disks")) {
            String id = v.path("id").asText();
            DiskOutcome dk = null;
            for (DiskOutcome x : o.disks) {
                if (x.id.equals(id)) {
                    dk = x;
                }
            }
            if (dk == null) {
                dk = new DiskOutcome();
                dk.id = id;
                o.disks.add(dk);
            }
            // After a completed migration the destination owns (and writes) the image: the source's
            // view of it is history, so only the destination's verdict on the image counts then.
            boolean judges = !source || !o.status.equals("completed");
            if (judges) {
                dk.imageOk = v.path("ok").asBoolean();
                dk.needsReset = v.path("needs-reset").asBoolean();
                dk.resets = v.path("resets").asLong();
                dk.resubmitted = v.path("resubmitted").asLong();
                dk.writesAcked = v.path("writes-acked").asLong();
                dk.blocksWritten = v.path("blocks-written").asLong();
                if (!dk.imageOk) {
                    dk.problem = (source ? "source: " : "destination: ") + v.path("problems").toString();
                }
            }
            if (source) {
                dk.sourceCompleted = v.path("completed").asLong();
                dk.continued = true;
            } else {
                dk.destinationCompleted = v.path("completed").asLong();
                // A disk whose driver gave up on its resets carries no I/O on; its image is what counts.
                dk.continued = v.path("needs-reset").asBoolean() || v.path("continuation").path("ok").asBoolean();
            }
            for (JsonNode dev : devs) {
                if (dev.path("id").asText().equals(id) && source) {
                    dk.drainedAtStop = dev.path("virtio-blk").path("drained-at-stop").asLong();
                    dk.carried = dev.path("virtio-blk").path("carried-out").asLong();
                    dk.section = String.format("virtio-mmio@%08x/virtio-blk", Long.decode(dev.path("base").asText()));
                }
            }
        }
    }


    /** The balloon's verdict: its size and holes on the side that has the guest now, and the hints it gave. */
    static void balloon(Outcome o, long balloonTarget, QmpClient s, QmpClient d, JsonNode sv, JsonNode dv,
                        boolean completed)
            throws Exception {
        BalloonOutcome b = new BalloonOutcome();
        b.target = balloonTarget;
        b.sourceActual = s.execute("query-balloon", null).path("actual").asLong();
        JsonNode sg = s.execute("x-ferry-guest", null).path("balloon");
        b.hintedPages = sg.path("hinted-pages").asLong();
        b.hintBytesSaved = sg.path("hint-bytes-saved").asLong();
        b.givenPages = sv.path("balloon").path("given-pages").asLong();
        b.holesOnSource = sv.path("balloon").path("given-pages-discarded").asLong();
        b.driverOk = sv.path("balloon").path("ok").asBoolean();
        if (completed) {
            b.destinationActual = d.execute("query-balloon", null).path("actual").asLong();
            b.holesOnDestination = dv.path("balloon").path("given-pages-discarded").asLong();
            b.driverOk = dv.path("balloon").path("ok").asBoolean();
            if (!b.driverOk) {
                b.problem = dv.path("balloon").path("problems").toString();
            }
        } else if (!b.driverOk) {
            b.problem = sv.path("balloon").path("problems").toString();
        }
        o.balloon = b;
    }

    /** What the demo proved. */
    static final class Outcome {
        NicOutcome nic;
        BalloonOutcome balloon;
        String status;
        boolean sourceRunning;
        boolean sourceIntact;
        String sourceState;
        String destinationState;
        boolean memoryEqual;
        boolean continued;
        long stepsReplayed;
        double digestMs;
        double guestPauseMs;
        boolean verified;
        String problem;
        /** The destination's own error-desc after a failed migration, when it is alive to say it. */
        String destinationProblem;
        boolean sourceVfsRunning = true;
        /** The source's open fds before the migrate command and after the outcome settled. */
        long fdsBefore = -1;
        long fdsAfter = -1;
        long totalTimeMs = -1;
        final List<VfOutcome> vfs = new ArrayList<>();
        final List<DiskOutcome> disks = new ArrayList<>();
    }

    /** The NIC's part of the outcome, mostly as the traffic peer saw it. */
    static final class NicOutcome {
        long guestFrames;
        long guestLost;
        long guestDupsOrReorders;
        long peerLost = -1;
        long peerDups;
        String sourcePort;
        String portNow;
        boolean moved;
        boolean sourceContinued;
        final List<String> announces = new ArrayList<>();
        long announceAcks;
        boolean driverOk;
        String problem;

        /**
         * Who announced the guest on the destination, from the frames the peer saw: the guest
         * itself (gratuitous ARPs, asked by VIRTIO_NET_S_ANNOUNCE under GUEST_ANNOUNCE), the host
         * (RARPs: the built-in device's own rounds, or a vhost-user back-end's for SEND_RARP), or both.
         */
        String announcedBy() {
            long rarps = announces.stream().filter(a -> a.startsWith("rarp ")).count();
            long garps = announces.stream().filter(a -> a.startsWith("arp ")).count();
            String guest = garps + " gratuitous ARP" + (garps == 1 ? "" : "s") + " from the guest (GUEST_ANNOUNCE)";
            String host = rarps + " RARP" + (rarps == 1 ? "" : "s") + " from the host";
            if (garps > 0 && rarps > 0) {
                return guest + " and " + host;
            }
            return garps > 0 ? guest : rarps > 0 ? host : "nobody";
        }

        boolean verified(boolean completed) {
            if (!completed) {
                return sourceContinued && !moved && announces.isEmpty() && guestDupsOrReorders == 0;
            }
            return moved && !announces.isEmpty() && guestDupsOrReorders == 0 && peerDups == 0 && driverOk;
        }
    }

    /** The balloon's part of the outcome. */
    static final class BalloonOutcome {
        long sourceActual;
        long destinationActual = -1;
        long target;
        long givenPages;
        long holesOnDestination = -1;
        long holesOnSource;
        long hintedPages;
        long hintBytesSaved;
        boolean driverOk;
        String problem;

        boolean verified(boolean completed) {
            if (!completed) {
                return sourceActual == target && holesOnSource == givenPages && driverOk;
            }
            return destinationActual == target && holesOnDestination == givenPages && driverOk && hintedPages > 0;
        }
    }

    /** One disk's part of the outcome. */
    static final class DiskOutcome {
        String id;
        String section;
        long drainedAtStop;
        long carried;
        long sourceCompleted;
        long destinationCompleted;
        long writesAcked;
        long blocksWritten;
        boolean imageOk;
        /** The device kept needing resets (NEEDS_RESET) until the guest's driver stopped at its limit. */
        boolean needsReset;
        /** Device resets the guest's driver did to recover from NEEDS_RESET, and the requests it resubmitted. */
        long resets;
        long resubmitted;
        boolean continued;
        String problem;

        boolean verified() {
            return imageOk && continued;
        }
    }

    /** One VF's part of the outcome. */
    static final class VfOutcome {
        String id;
        String sourceState;
        String destinationState;
        long precopyBytes;
        long stopCopyBytes;
        boolean stateEqual;
        boolean ringOk;
        long sourceDeliveries;
        long destinationDeliveries;
        int resets;
        String problem;

        boolean verified() {
            return stateEqual && ringOk && destinationDeliveries > sourceDeliveries && "STOP".equals(sourceState)
                    && "RUNNING".equals(destinationState);
        }
    }
}
