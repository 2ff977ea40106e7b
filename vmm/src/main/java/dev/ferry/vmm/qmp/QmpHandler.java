package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * One QMP command's implementation.
 *
 * <p>Thread: always the server's single {@code ferry-qmp} dispatcher thread, one command at a time
 * across all clients (QEMU runs commands on its main loop the same way), so a handler may block
 * (it holds up every other command meanwhile) and needs no locking against other handlers. It may
 * call {@link QmpServer#emit}; the event reaches clients before this command's reply. If the
 * server closes while a handler runs, the handler's thread is interrupted; return (or throw) soon,
 * and the reply is still delivered before the client is disconnected.
 *
 * <p>Validate every argument before causing any effect: QMP promises clients that argument errors
 * are reported before anything happened. Read arguments through {@link QmpArgs}, then call
 * {@link QmpArgs#checkNoOtherArguments()} (or register the command with its parameter names).
 */
@FunctionalInterface
public interface QmpHandler {
    /**
     * Runs the command.
     *
     * @return the {@code "return"} value; null means {@code {}}, as QEMU answers commands without
     *     a declared return type
     * @throws QmpError to answer with an error reply; any RuntimeException becomes a GenericError
     *     carrying its message (and is logged), the connection stays up
     */
    JsonNode handle(QmpArgs args) throws QmpError;
}
