/**
 * QMP, the QEMU Machine Protocol, for Ferry's VMM process: a {@link dev.ferry.vmm.qmp.QmpServer}
 * on a UNIX socket and a blocking {@link dev.ferry.vmm.qmp.QmpClient}. The wire format follows
 * QEMU 7.2 (docs/interop/qmp-spec.txt, qapi/qmp-dispatch.c, monitor/qmp.c) down to error texts,
 * member order and CRLF line ends, so QEMU's clients and users' scripts work against Ferry.
 *
 * <p>A command is a name and a {@link dev.ferry.vmm.qmp.QmpHandler}; the handler reads its
 * arguments through {@link dev.ferry.vmm.qmp.QmpArgs}, which refuses bad input with QEMU's
 * messages, and answers with a value or a {@link dev.ferry.vmm.qmp.QmpError}:
 * <pre>{@code
 * QmpCommands commands = new QmpCommands()
 *         .register("migrate", args -> {
 *             String uri = args.requiredString("uri");
 *             boolean resume = args.optionalBool("resume", false);
 *             args.checkNoOtherArguments();            // all checks before any effect
 *             if (migration.isActive()) {
 *                 throw QmpError.generic("There's a migration process in progress");
 *             }
 *             migration.start(uri, resume);              // returns at once, like QEMU's migrate
 *             return null;                               // {"return": {}}
 *         });
 * try (QmpServer qmp = new QmpServer(socket, new QmpVersion(7, 2, 0, "ferry 0.1.0"), commands)) {
 *     qmp.emit("STOP", null);                            // from any thread
 * }
 * }</pre>
 *
 * <p>Threads, in short: socket I/O on one Netty event loop ({@code ferry-qmp-io-*}); every command
 * on one dispatcher thread ({@code ferry-qmp}), one at a time across clients; events from any
 * thread; each client has a reader thread ({@code ferry-qmp-client-N}). Each class says more.
 */
package dev.ferry.vmm.qmp;
