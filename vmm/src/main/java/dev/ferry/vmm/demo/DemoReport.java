package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vmm.run.QapiJson;

import java.io.PrintStream;

/** The demo's report: the per-device breakdown, the verification, and the one-object JSON form. */
final class DemoReport {
    private DemoReport() {
    }

    static void devices(JsonNode info, DemoOutcomes.Outcome o, PrintStream out) {
        JsonNode devs = info.path("x-ferry-devices");
        if (!devs.isArray() || devs.isEmpty()) {
            return;
        }
        long totalUs = 0;
        for (JsonNode d : devs) {
            totalUs += d.path("downtime-us").asLong();
        }
        out.println("devices:");
        int width = 10;
        for (JsonNode d : devs) {
            width = Math.max(width, d.path("id").asText().length());
        }
        for (JsonNode d : devs) {
            long us = d.path("downtime-us").asLong();
            String id = d.path("id").asText();
            DemoOutcomes.VfOutcome vf = vfOf(o, id);
            out.printf("  %-" + width + "s #%d %-10s %12d bytes  downtime %7.2f ms (%5.1f %%)  source %s, destination %s%n",
                    id, d.path("instance-id").asInt(), kind(id),
                    d.path("precopy-bytes").asLong() + d.path("downtime-bytes").asLong(), us / 1000.0,
                    totalUs == 0 ? 0.0 : 100.0 * us / totalUs, vf != null ? vf.sourceState : o.sourceState,
                    vf != null ? (vf.destinationState == null ? "-" : vf.destinationState) : o.destinationState);
        }
    }

    /** The VF behind a section id {@code <vf>/vfio}, or null. */
    static DemoOutcomes.VfOutcome vfOf(DemoOutcomes.Outcome o, String idstr) {
        for (DemoOutcomes.VfOutcome v : o.vfs) {
            if (idstr.equals(v.id + "/vfio")) {
                return v;
            }
        }
        return null;
    }

    static void vfs(DemoOutcomes.Outcome o, PrintStream out) {
        if (o.vfs.isEmpty()) {
            return;
        }
        out.println("VFs:");
        for (DemoOutcomes.VfOutcome v : o.vfs) {
            out.printf("  %-6s %,14d bytes in pre-copy, %,12d in downtime; source %s, destination %s%s%n", v.id,
                    v.precopyBytes, v.stopCopyBytes, v.sourceState, v.destinationState == null ? "-" : v.destinationState,
                    v.resets > 0 ? " (reset " + v.resets + "x by QEMU's recovery; the guest's driver brought it up again)"
                            : "");
            if (o.status.equals("completed")) {
                out.printf("         internal state at load %s the source's at stop; RX ring in guest RAM %s"
                                + " (%d deliveries on the source, %d on the destination)%n",
                        v.stateEqual ? "equals" : "DIFFERS FROM", v.ringOk ? "verified" : "CORRUPT",
                        v.sourceDeliveries, v.destinationDeliveries);
            } else {
                out.printf("         RX ring in guest RAM %s (%d deliveries)%n", v.problem == null ? "verified" : "CORRUPT",
                        v.sourceDeliveries);
            }
            if (v.problem != null) {
                out.println("         problem: " + v.problem);
            }
        }
    }

    static void disks(DemoOutcomes.Outcome o, PrintStream out) {
        if (o.disks.isEmpty()) {
            return;
        }
        out.println("disks:");
        for (DemoOutcomes.DiskOutcome d : o.disks) {
            if (o.status.equals("completed")) {
                out.printf("  %-6s %d request(s) in flight drained at stop, %d carried in the stream%n", d.id,
                        d.drainedAtStop, d.carried);
                out.printf("         image %s against the guest's %d acknowledged writes (%d blocks written);"
                                + " guest I/O %s (%d requests completed on the source, %d by now on the destination)%n",
                        d.imageOk ? "verified" : "CORRUPT", d.writesAcked, d.blocksWritten,
                        d.continued ? "continued" : "DID NOT CONTINUE", d.sourceCompleted, d.destinationCompleted);
            } else {
                out.printf("  %-6s image %s against the source guest's %d acknowledged writes%n", d.id,
                        d.imageOk ? "verified" : "CORRUPT", d.writesAcked);
            }
            if (d.resets > 0) {
                out.printf("         the device asked for a reset (NEEDS_RESET: e.g. its vhost-user back-end was lost with"
                        + " requests out and no in-flight region); the guest's driver reset it %d time(s) and"
                        + " submitted %d request(s) again%n", d.resets, d.resubmitted);
            }
            if (d.needsReset) {
                out.println("         the device kept needing resets; the guest's driver stopped at its reset limit");
            }
            if (d.problem != null) {
                out.println("         problem: " + d.problem);
            }
        }
    }

    static void nic(DemoOutcomes.Outcome o, PrintStream out) {
        DemoOutcomes.NicOutcome n = o.nic;
        if (n == null) {
            return;
        }
        boolean completed = o.status.equals("completed");
        out.println("NIC:");
        out.printf("  net0   guest -> peer: %,d frames, %d lost, %d duplicated or reordered%n", n.guestFrames, n.guestLost,
                n.guestDupsOrReorders);
        if (completed) {
            out.printf("         peer -> guest: %d lost while the guest moved (the peer's frames to the source's port"
                    + " until the announce), %d duplicated or reordered%n", n.peerLost, n.peerDups);
            out.printf("         announce: %s; the peer moved the MAC %s; %d guest acks of VIRTIO_NET_S_ANNOUNCE%n",
                    n.announces.isEmpty() ? "NONE SEEN" : String.join(", ", n.announces),
                    n.moved ? "from " + n.sourcePort + " to " + n.portNow : "NOWHERE", n.announceAcks);
            out.printf("         announced by: %s%n", n.announcedBy());
            out.printf("         destination driver %s%n", n.driverOk ? "ran on without error" : "FAILED: " + n.problem);
        } else {
            out.printf("         the source %s sending from %s; announces %s; MAC %s%n",
                    n.sourceContinued ? "kept" : "STOPPED", n.portNow, n.announces.isEmpty() ? "none (right)" : n.announces,
                    n.moved ? "MOVED" : "stayed with the source");
        }
    }

    static void balloon(DemoOutcomes.Outcome o, PrintStream out) {
        DemoOutcomes.BalloonOutcome b = o.balloon;
        if (b == null) {
            return;
        }
        out.println("balloon:");
        if (o.status.equals("completed")) {
            out.printf("  balloon0 size kept: the destination's guest has %d MiB (the source's %d MiB, asked %d MiB);"
                            + " %d of its %d ballooned pages are holes in the destination's memory%n",
                    b.destinationActual >> 20, b.sourceActual >> 20, b.target >> 20, b.holesOnDestination, b.givenPages);
        } else {
            out.printf("  balloon0 on the source: %d MiB (asked %d MiB); %d of %d ballooned pages are holes%n",
                    b.sourceActual >> 20, b.target >> 20, b.holesOnSource, b.givenPages);
        }
        out.printf("         free page hints: %,d pages hinted, %.1f MiB not sent%n", b.hintedPages,
                b.hintBytesSaved / 1048576.0);
        if (b.problem != null) {
            out.printf("         PROBLEM: %s%n", b.problem);
        }
    }

    static void verification(DemoOutcomes.Outcome o, PrintStream out) {
        vfs(o, out);
        disks(o, out);
        nic(o, out);
        balloon(o, out);
        if (o.status.equals("completed")) {
            out.printf("verified:        destination RAM %s the source's at switchover%n",
                    o.memoryEqual ? "equals" : "DIFFERS FROM");
            out.printf("                 the guest continued on the destination: %s%n", o.continued
                    ? "yes (" + o.stepsReplayed + " writes replayed and checked)" : "NO");
            out.printf("verification:    %.0f ms of digest on the destination before its VM ran: inside the guest pause"
                    + " above, outside QEMU's downtime; without it the guest pause is %.0f ms%n", o.digestMs,
                    Math.max(0, o.guestPauseMs - o.digestMs));
            if (!o.verified && o.problem != null) {
                out.println("problem:         " + o.problem);
            }
        } else {
            out.printf("source VM:       %s, guest memory %s%s%n", o.sourceState, o.sourceIntact ? "intact" : "CORRUPT",
                    o.vfs.isEmpty() ? "" : o.sourceVfsRunning ? ", VFs RUNNING" : ", VFs NOT RUNNING");
            out.printf("destination VM:  %s%n", o.destinationState);
            if (o.problem != null) {
                out.printf("reason:          %s%n", o.problem);
            }
        }
    }

    static String kind(String idstr) {
        if (idstr.endsWith("/vfio")) {
            return "vfio";
        }
        if (idstr.endsWith("/virtio-blk")) {
            return "virtio-blk";
        }
        if (idstr.endsWith("/virtio-net")) {
            return "virtio-net";
        }
        if (idstr.endsWith("/virtio-balloon")) {
            return "virtio-balloon";
        }
        return switch (idstr) {
            case "ram" -> "ram";
            case "cpu-soft" -> "soft-vcpu";
            case "cpu" -> "kvm-vcpu";
            case "kvmclock" -> "clock";
            case "globalstate" -> "run-state";
            case "soft-irqchip" -> "irqchip";
            default -> "device";
        };
    }

    static ObjectNode json(JsonNode info, String engine, DemoOutcomes.Outcome o) {
        ObjectNode j = QapiJson.JSON.createObjectNode();
        j.put("status", o.status);
        j.put("engine", engine);
        long total = info.path("total-time").asLong();
        j.put("total_ms", total);
        j.put("downtime_ms", info.path("downtime").asLong(0));
        j.put("guest_pause_ms", info.path("x-ferry-guest-pause").asLong(0));
        j.put("verification_digest_ms", o.digestMs);
        j.put("guest_pause_without_verification_ms", Math.max(0, info.path("x-ferry-guest-pause").asLong(0) - o.digestMs));
        j.set("downtime_phases_us", info.path("x-ferry-downtime-breakdown").deepCopy());
        if (o.balloon != null) {
            DemoOutcomes.BalloonOutcome b = o.balloon;
            j.putObject("balloon").put("target_bytes", b.target).put("source_actual_bytes", b.sourceActual)
                    .put("destination_actual_bytes", b.destinationActual).put("ballooned_pages", b.givenPages)
                    .put("holes_on_destination", b.holesOnDestination).put("hinted_pages", b.hintedPages)
                    .put("hint_bytes_saved", b.hintBytesSaved).put("verified", b.verified(o.status.equals("completed")));
        }
        if (o.nic != null) {
            DemoOutcomes.NicOutcome n = o.nic;
            ObjectNode nn = j.putObject("nic");
            nn.put("guest_frames", n.guestFrames).put("guest_lost", n.guestLost)
                    .put("guest_dups_or_reorders", n.guestDupsOrReorders).put("peer_lost", n.peerLost)
                    .put("peer_dups", n.peerDups).put("moved", n.moved).put("source_continued", n.sourceContinued)
                    .put("announce_acks", n.announceAcks).put("announced_by", n.announcedBy())
                    .put("verified", n.verified(o.status.equals("completed")));
            n.announces.forEach(nn.putArray("announces")::add);
        }
        j.put("setup_ms", info.path("setup-time").asLong());
        long transferred = info.path("ram").path("transferred").asLong();
        j.put("transferred_bytes", transferred);
        j.put("iterations", info.path("ram").path("dirty-sync-count").asLong());
        j.put("throughput_mbps", total > 0 ? transferred * 8.0 / 1e3 / total : 0.0);
        j.put("verified", o.status.equals("completed") ? o.verified : o.sourceRunning && o.sourceIntact);
        j.put("source_running", o.sourceRunning);
        ArrayNode devices = j.putArray("devices");
        for (JsonNode d : info.path("x-ferry-devices")) {
            ObjectNode dn = devices.addObject();
            String id = d.path("id").asText();
            boolean perVcpu = id.equals("cpu-soft") || id.equals("cpu");
            dn.put("id", perVcpu || d.path("instance-id").asInt() != 0 ? id + "/" + d.path("instance-id").asInt() : id);
            dn.put("kind", kind(id));
            dn.put("transferred_bytes", d.path("precopy-bytes").asLong() + d.path("downtime-bytes").asLong());
            dn.put("downtime_ms", d.path("downtime-us").asLong() / 1000.0);
            DemoOutcomes.VfOutcome vf = vfOf(o, id);
            dn.put("source_state", vf != null ? vf.sourceState : o.sourceState);
            dn.put("destination_state", vf != null ? vf.destinationState : o.destinationState);
        }
        ArrayNode disks = j.putArray("disks");
        for (DemoOutcomes.DiskOutcome d : o.disks) {
            disks.addObject().put("id", d.id).put("drained_at_stop", d.drainedAtStop).put("carried", d.carried)
                    .put("writes_acked", d.writesAcked).put("image_verified", d.imageOk).put("continued", d.continued)
                    .put("source_completed", d.sourceCompleted).put("destination_completed", d.destinationCompleted)
                    .put("driver_resets", d.resets).put("resubmitted", d.resubmitted)
                    .put("reset_limit_reached", d.needsReset).put("verified", d.verified());
        }
        ArrayNode vfs = j.putArray("vfs");
        for (DemoOutcomes.VfOutcome v : o.vfs) {
            vfs.addObject().put("id", v.id).put("source_state", v.sourceState).put("destination_state", v.destinationState)
                    .put("precopy_bytes", v.precopyBytes).put("downtime_bytes", v.stopCopyBytes)
                    .put("state_equal", v.stateEqual).put("ring_verified", v.ringOk)
                    .put("source_deliveries", v.sourceDeliveries).put("destination_deliveries", v.destinationDeliveries)
                    .put("resets", v.resets).put("verified", v.verified());
        }
        if (o.problem != null) {
            j.put("problem", o.problem);
        }
        return j;
    }
}
