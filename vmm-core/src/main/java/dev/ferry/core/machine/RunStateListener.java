package dev.ferry.core.machine;

/** Outbound port: hears run-state changes (the QMP server turns them into STOP/RESUME events). */
@FunctionalInterface
public interface RunStateListener {
    void runStateChanged(RunState previous, RunState current);
}
