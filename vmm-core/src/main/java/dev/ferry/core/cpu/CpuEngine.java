package dev.ferry.core.cpu;

/**
 * The vCPUs of a machine, run by one engine ({@code kvm} or {@code soft}). The machine drives it
 * through the run-state protocol: {@link #resume()} lets vCPUs run, {@link #pause()} returns only
 * when no vCPU executes guest code or touches guest memory any more.
 */
public interface CpuEngine extends AutoCloseable {
    /** {@code "soft"} or {@code "kvm"}. */
    String name();

    int vcpuCount();

    /** Starts (or restarts) every vCPU. */
    void resume();

    /** Stops every vCPU and waits until each acknowledged. Idempotent. */
    void pause();

    /**
     * Limits vCPUs to {@code 100 - percentage} % of their time (auto-converge). 0 removes the limit.
     */
    void setThrottlePercentage(int percentage);

    int throttlePercentage();

    @Override
    void close();
}
