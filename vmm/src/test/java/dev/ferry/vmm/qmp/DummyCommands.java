package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Commands that exercise the server's machinery, standing in for the VMM's real ones.
 * <ul>
 *   <li>{@code echo}: returns its arguments unchanged (accepts anything);</li>
 *   <li>{@code typed}: reads {@code uri} (string, required), {@code detach} (bool), {@code count}
 *       (int 0..10), {@code caps} (list of {capability: string, state: bool}), {@code mode}
 *       (enum fast/slow), then refuses anything else; returns what it read;</li>
 *   <li>{@code declared}: registered with parameters {@code a} and {@code b}; returns {};</li>
 *   <li>{@code refuse}: throws DeviceNotFound; {@code crash}: throws IllegalStateException;</li>
 *   <li>{@code emit-then-return}: emits {@code DURING} through the server, then returns;</li>
 *   <li>{@code quit}: closes the server from inside the handler, as QEMU's quit ends QEMU.</li>
 * </ul>
 */
final class DummyCommands {
    static final QmpVersion VERSION = new QmpVersion(7, 2, 0, "ferry-test");

    private DummyCommands() {
    }

    /** The registry; {@code server} is filled in once the server exists. */
    static QmpCommands create(AtomicReference<QmpServer> server) {
        return new QmpCommands()
                .register("echo", QmpArgs::json)
                .register("typed", DummyCommands::typed)
                .register("declared", Set.of("a", "b"), args -> null)
                .register("refuse", args -> {
                    throw QmpError.deviceNotFound("Device 'nic9' not found");
                })
                .register("crash", args -> {
                    throw new IllegalStateException("boom: handler bug");
                })
                .register("emit-then-return", args -> {
                    server.get().emit("DURING", null);
                    return QmpWire.NODES.objectNode().put("done", true);
                })
                .register("quit", args -> {
                    server.get().close();
                    return null;
                });
    }

    static ObjectNode typed(QmpArgs args) {
        String uri = args.requiredString("uri");
        boolean detach = args.optionalBool("detach", false);
        int count = args.optionalInt("count", 1, 0, 10);
        String mode = args.optionalEnum("mode", List.of("fast", "slow"), "fast");
        ObjectNode result = QmpWire.NODES.objectNode().put("uri", uri).put("detach", detach).put("count", count)
                .put("mode", mode);
        ArrayNode caps = result.putArray("caps");
        for (QmpArgs cap : args.optionalObjectList("caps")) {
            caps.addObject().put(cap.requiredString("capability"), cap.requiredBool("state"));
            cap.checkNoOtherArguments();
        }
        args.checkNoOtherArguments();
        return result;
    }
}
