package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vmm.demo.DemoOutcomes.Outcome;
import dev.ferry.vmm.run.QapiJson;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@code ferry faults}: the fault matrix as a feature. Each cell is one {@code ferry demo} — a
 * source and a destination VMM process, the guest running with every device kind Ferry has (an
 * emulated SR-IOV VF, a virtio-blk disk, a virtio-net NIC, a virtio-balloon) — in which one fault
 * hits one phase: a cancel, the destination's death, the network dropped or stalled, a device
 * failing a transition, the destination refusing the state. A cell passes when the migration did
 * not complete and the source is whole: its VM running, the guest's memory intact, its VFs back in
 * RUNNING, every write the disk acknowledged on the image, the NIC still talking from the source,
 * the balloon as it was, and no fd more than before. Prints a table (or {@code --json}); exit 0
 * only when every cell passed.
 */
@Command(name = "faults", mixinStandardHelpOptions = true,
        description = "Run the fault matrix (phase x fault, every device kind) between two VMM processes and"
                + " print each outcome.")
public final class FaultsCommand implements Callable<Integer> {
    @Option(names = "--ram", defaultValue = "256M", description = "guest RAM per cell (default ${DEFAULT-VALUE})")
    String ram;

    @Option(names = "--reduced", description = "one cell per fault kind (what CI runs)")
    boolean reduced;

    @Option(names = "--only", paramLabel = "FAULT",
            description = "run only the cells of this fault (cancel, kill-destination, network-drop, network-stall,"
                    + " vf-fails, destination-refuses; backend-dies with --vhost-user)")
    String only;

    @Option(names = "--vhost-user", description = "the disk and the NIC over vhost-user (as ferry demo --vhost-user)")
    boolean vhostUser;

    @Option(names = "--multifd-channels", defaultValue = "0",
            description = "migrate RAM over this many multifd channels; 0: one stream (default ${DEFAULT-VALUE})")
    int multifdChannels;

    @Option(names = "--json", description = "print exactly one JSON object instead of the table")
    boolean json;

    /** One cell: a fault, the phase it hits, and the demo options that make it. */
    record Cell(String fault, String phase, List<String> options) {
    }

    static List<Cell> matrix(boolean reduced) {
        return matrix(reduced, false);
    }

    /** With {@code vhostUser}, also the source's disk back-end dying (and restarted) in each phase. */
    static List<Cell> matrix(boolean reduced, boolean vhostUser) {
        List<Cell> cells = new ArrayList<>();
        List<String> phases = List.of("setup", "active", "device");
        for (String p : phases) {
            cells.add(new Cell("cancel", p, List.of("--cancel-at", p)));
            cells.add(new Cell("kill-destination", p, List.of("--kill-destination-at", p)));
            cells.add(new Cell("network-drop", p, List.of("--network-fault", "drop", "--network-fault-at", p)));
            cells.add(new Cell("network-stall", p, List.of("--network-fault", "stall", "--network-fault-at", p)));
            if (vhostUser) {
                cells.add(new Cell("backend-dies", p, List.of("--backend-dies-at", p)));
            }
        }
        // A VF failing the arc into a state: PRE_COPY at setup, PRE_COPY_P2P when the VM stops, STOP_COPY
        // after; and a destination VF refusing the state it was given (RESUMING -> STOP).
        cells.add(new Cell("vf-fails", "setup", List.of("--vf", "1:fault=fail-set:PRE_COPY")));
        cells.add(new Cell("vf-fails", "device", List.of("--vf", "1:fault=fail-set:PRE_COPY_P2P")));
        cells.add(new Cell("vf-fails", "device", List.of("--vf", "1:fault=fail-set:STOP_COPY")));
        cells.add(new Cell("vf-fails", "device", List.of("--vf", "1:fault=reject-load")));
        // The destination refuses: its RAM block is longer (checked at setup), its disk larger (at the device state).
        cells.add(new Cell("destination-refuses", "setup", List.of("--destination-refuses", "ram")));
        cells.add(new Cell("destination-refuses", "device", List.of("--destination-refuses", "disk")));
        if (!reduced) {
            return cells;
        }
        List<Cell> one = new ArrayList<>();
        for (Cell c : cells) {
            if (one.stream().noneMatch(x -> x.fault().equals(c.fault()))
                    && (c.phase().equals("device") || c.fault().equals("destination-refuses"))) {
                one.add(c);
            }
        }
        return one;
    }

    /** What one cell showed. */
    record Result(Cell cell, Outcome outcome, int exit, String error) {
        boolean passed() {
            Outcome o = outcome;
            if (o != null && cell.fault().equals("backend-dies") && o.status.equals("completed")) {
                // The front-end reconnected to the restarted back-end before the migration needed it.
                return o.verified && o.fdsAfter >= 0;
            }
            return o != null && !o.status.equals("completed") && o.sourceRunning && o.sourceIntact
                    && o.sourceVfsRunning && o.disks.stream().allMatch(d -> d.imageOk)
                    && (o.nic == null || o.nic.verified(false)) && (o.balloon == null || o.balloon.verified(false))
                    && o.fdsAfter >= 0 && o.fdsAfter <= o.fdsBefore;
        }
    }

    @Override
    public Integer call() throws Exception {
        List<Result> results = new ArrayList<>();
        PrintStream out = System.out;
        for (Cell c : matrix(reduced, vhostUser)) {
            if (only != null && !c.fault().equals(only)) {
                continue;
            }
            if (!json) {
                out.printf("%-20s %-7s %s ...%n", c.fault(), c.phase(), String.join(" ", c.options()));
            }
            results.add(run(c));
        }
        if (json) {
            out.println(json(results).toPrettyString());
        } else {
            table(results, out);
        }
        return results.stream().allMatch(Result::passed) ? 0 : 1;
    }

    private Result run(Cell c) {
        List<String> args = new ArrayList<>(List.of("--engine", "soft", "--ram", ram, "--working-set", "64M",
                "--dirty-rate", "20M", "--disk", "32M"));
        if (c.options().stream().noneMatch(a -> a.equals("--vf"))) {
            args.addAll(List.of("--vf", "1"));
        }
        args.addAll(c.options());
        if (vhostUser) {
            args.add("--vhost-user");
        }
        if (multifdChannels > 0) {
            args.addAll(List.of("--multifd-channels", Integer.toString(multifdChannels)));
        }
        DemoCommand demo = new DemoCommand();
        AtomicReference<Outcome> got = new AtomicReference<>();
        demo.outcomes = got::set;
        try {
            new CommandLine(demo).parseArgs(args.toArray(new String[0]));
            int exit = demo.call();
            return new Result(c, got.get(), exit, got.get() == null ? "the demo ended without an outcome" : null);
        } catch (Exception e) {
            return new Result(c, got.get(), -1, e.toString());
        }
    }

    static void table(List<Result> results, PrintStream out) {
        out.println();
        out.printf("%-20s %-7s %-9s %7s %-7s %-6s %-5s %-5s %-5s %-7s %-9s %s%n", "fault", "phase", "status", "ms",
                "source", "guest", "vf", "disk", "nic", "balloon", "fds", "verdict / reason");
        int passed = 0;
        for (Result r : results) {
            Outcome o = r.outcome();
            if (o == null) {
                out.printf("%-20s %-7s %s%n", r.cell().fault(), r.cell().phase(), "ERROR " + r.error());
                continue;
            }
            passed += r.passed() ? 1 : 0;
            // A completed cell (a back-end restarted in time) is judged by the destination's verification.
            boolean moved = o.status.equals("completed");
            out.printf(Locale.ROOT, "%-20s %-7s %-9s %7d %-7s %-6s %-5s %-5s %-5s %-7s %-9s %s — %s%n",
                    r.cell().fault(), r.cell().phase(), o.status, o.totalTimeMs, o.sourceState,
                    ok(o.sourceIntact), moved ? ok(o.verified) : ok(o.sourceVfsRunning),
                    ok(o.disks.stream().allMatch(d -> d.imageOk)),
                    o.nic == null ? "-" : moved ? ok(o.verified) : ok(o.nic.verified(false)),
                    o.balloon == null ? "-" : ok(o.balloon.verified(false)),
                    o.fdsBefore + "->" + o.fdsAfter, r.passed() ? "PASS" : "FAIL",
                    moved && o.verified ? "completed after the back-end's restart; the destination verified every device"
                            : shorten(o.problem));
            if (o.destinationProblem != null && !o.destinationProblem.equals(o.problem)) {
                out.printf("%-104s destination: %s%n", "", shorten(o.destinationProblem));
            }
        }
        out.printf("%n%d of %d cells passed%n", passed, results.size());
    }

    private static String ok(boolean b) {
        return b ? "ok" : "LOST";
    }

    private static String shorten(String s) {
        if (s == null) {
            return "(no reason given)";
        }
        return s.length() > 160 ? s.substring(0, 157) + "..." : s;
    }

    static ObjectNode json(List<Result> results) {
        ObjectNode root = QapiJson.JSON.createObjectNode();
        ArrayNode cells = root.putArray("cells");
        for (Result r : results) {
            ObjectNode c = cells.addObject().put("fault", r.cell().fault()).put("phase", r.cell().phase())
                    .put("options", String.join(" ", r.cell().options())).put("passed", r.passed());
            Outcome o = r.outcome();
            if (o == null) {
                c.put("error", r.error());
                continue;
            }
            c.put("status", o.status).put("total-time", o.totalTimeMs).put("source-state", o.sourceState)
                    .put("guest-intact", o.sourceIntact).put("vfs-running", o.sourceVfsRunning)
                    .put("disks-ok", o.disks.stream().allMatch(d -> d.imageOk))
                    .put("fds-before", o.fdsBefore).put("fds-after", o.fdsAfter).put("reason", o.problem)
                    .put("destination-reason", o.destinationProblem);
            if (o.nic != null) {
                c.put("nic-ok", o.nic.verified(false));
            }
            if (o.balloon != null) {
                c.put("balloon-ok", o.balloon.verified(false));
            }
        }
        root.put("passed", results.stream().filter(Result::passed).count());
        root.put("cells-run", results.size());
        return root;
    }
}
