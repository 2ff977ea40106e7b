package dev.ferry.vmm.demo;

import dev.ferry.vmm.qmp.QmpClient;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The demo's network and destination faults (a picocli mixin of {@code ferry demo}): the relay
 * that breaks the network at a phase, the destination that must refuse the stream, and the fd
 * count that says a failed migration left nothing behind. Owns the relay.
 */
final class DemoFaults implements AutoCloseable {
    @Option(names = "--network-fault", paramLabel = "KIND",
            description = "break the network between the VMMs at --network-fault-at: drop (both connections reset)"
                    + " or stall (nothing moves, nothing closes; the return-path heartbeat must notice); tcp only")
    String networkFault;

    @Option(names = "--network-fault-at", paramLabel = "PHASE", defaultValue = "active",
            description = "the phase of --network-fault: setup, active or device (default ${DEFAULT-VALUE})")
    String networkFaultAt;

    @Option(names = "--destination-refuses", paramLabel = "WHAT",
            description = "give the destination a machine that must refuse the stream: ram (64 MiB more RAM: the RAM"
                    + " block's length differs) or disk (an image 1 MiB larger: the disk's capacity differs)")
    String destinationRefuses;

    @Option(names = "--backend-dies-at", paramLabel = "PHASE",
            description = "with --vhost-user: the source's disk back-end is killed in this phase (setup, active or"
                    + " device) and restarted on its socket 300 ms later, as a supervisor would")
    String backendDiesAt;

    /** The network the demo breaks, once {@link #route} made it. */
    private FaultyRelay relay;

    /**
     * Null when the options make sense together (with the demo's {@code --cancel-at} and
     * {@code --kill-destination-at}: one fault at a time, each in a phase that exists), else what
     * is wrong.
     */
    String check(String transport, long diskBytes, boolean vhostUser, String cancelAt, String killAt) {
        if ((cancelAt != null ? 1 : 0) + (killAt != null ? 1 : 0) + (networkFault != null ? 1 : 0)
                + (backendDiesAt != null ? 1 : 0) > 1) {
            return "use one of --cancel-at, --kill-destination-at, --network-fault and --backend-dies-at";
        }
        for (String phase : new String[] {cancelAt, killAt, networkPhase(), backendDiesAt}) {
            if (phase != null && !List.of("setup", "active", "device").contains(phase)) {
                return "PHASE must be setup, active or device, not '" + phase + "'";
            }
        }
        if (backendDiesAt != null && (!vhostUser || diskBytes == 0)) {
            return "--backend-dies-at needs --vhost-user and a --disk";
        }
        if (networkFault != null && !List.of("drop", "stall").contains(networkFault)) {
            return "--network-fault must be drop or stall, not '" + networkFault + "'";
        }
        if (networkFault != null && !transport.equals("tcp")) {
            return "--network-fault needs --transport tcp";
        }
        if (destinationRefuses != null && !List.of("ram", "disk").contains(destinationRefuses)) {
            return "--destination-refuses must be ram or disk, not '" + destinationRefuses + "'";
        }
        if ("disk".equals(destinationRefuses) && diskBytes == 0) {
            return "--destination-refuses disk needs a --disk";
        }
        return null;
    }

    /** The phase the back-end dies in, or null. */
    String backendPhase() {
        return backendDiesAt;
    }

    /** Kills and restarts the source's disk back-end now; false when that is not the fault. */
    boolean killBackend(String phase, DemoBackends backends, List<String> actions) throws Exception {
        if (backendDiesAt == null) {
            return false;
        }
        backends.restartSourceDisk(300);
        actions.add("the source's disk back-end (" + backends.diskServer + ") killed in phase " + phase
                + " and restarted 300 ms later");
        return true;
    }

    /** The phase the network fault hits, or null. */
    String networkPhase() {
        return networkFault != null ? networkFaultAt : null;
    }

    /** Whether the destination refuses its RAM ({@code "ram"}) or disk ({@code "disk"}). */
    boolean refuses(String what) {
        return what.equals(destinationRefuses);
    }

    boolean refusing() {
        return destinationRefuses != null;
    }

    /**
     * The URI the source migrates to: the destination's, or with a network fault a relay in front
     * of it.
     */
    String route(String destinationUri, PrintStream say) throws java.io.IOException {
        if (networkFault == null) {
            return destinationUri;
        }
        String[] hp = destinationUri.substring("tcp:".length()).split(":");
        relay = new FaultyRelay(hp[0], Integer.parseInt(hp[1]));
        say.printf("network:         through a relay at %s that will %s in phase %s%n", relay.uri(),
                networkFault.equals("drop") ? "reset both connections" : "stall", networkFaultAt);
        return relay.uri();
    }

    /** Breaks the network now; false when there is no network fault to act. */
    boolean breakNetwork(String phase, List<String> actions) {
        if (networkFault == null) {
            return false;
        }
        if (networkFault.equals("drop")) {
            relay.drop();
            actions.add("network dropped (both connections reset) in phase " + phase);
        } else {
            relay.stall();
            actions.add("network stalled (nothing moves, nothing closes) in phase " + phase);
        }
        return true;
    }

    /** A stalled network is noticed in 2 s rather than the default 5 (x-heartbeat-timeout). */
    boolean stalls() {
        return "stall".equals(networkFault);
    }

    /**
     * The source's open fds once the failed migration's sockets are gone: sampled until they are
     * back to {@code before} or two seconds passed (a closing socket lingers briefly).
     */
    static long settledFds(QmpClient s, long before) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
        long now;
        do {
            now = s.execute("x-ferry-resources", null).path("fds").asLong();
            if (now <= before) {
                return now;
            }
            Thread.sleep(50);
        } while (System.nanoTime() < deadline);
        return now;
    }

    @Override
    public void close() {
        if (relay != null) {
            relay.close();
        }
    }
}
