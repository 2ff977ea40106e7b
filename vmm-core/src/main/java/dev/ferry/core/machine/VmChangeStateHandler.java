package dev.ferry.core.machine;

/**
 * Called when the VM starts or stops running (QEMU's VM-change-state handlers). On start,
 * handlers run in ascending priority; on stop, in descending priority. The {@link #prepare}
 * stage runs for every handler before any {@link #onChange}: VFIO uses it to move every device to
 * a *_P2P state before any device stops.
 *
 * <p>Runs on the thread that changes the run state, with vCPUs already paused (stop) or not yet
 * resumed (start). A handler that cannot complete its transition throws; the machine still runs
 * every other handler and then reports all failures together.
 */
public interface VmChangeStateHandler {
    default void prepare(boolean running, RunState state) throws VmStateChangeException {
    }

    void onChange(boolean running, RunState state) throws VmStateChangeException;
}
