/**
 * The software guest engine ({@code soft}): vCPU threads that run a reproducible dirtying
 * workload on guest memory, for hosts without /dev/kvm and for migration benchmarks.
 *
 * <ul>
 *   <li>{@link dev.ferry.core.cpu.soft.SoftWorkload} — what to run: vCPUs, dirty rate, working
 *       set, seed; the working set is split into one partition per vCPU.</li>
 *   <li>{@link dev.ferry.core.cpu.soft.SoftCpuEngine} — the {@code CpuEngine}: threads, run-state
 *       protocol, throttle, counters, migration registration, verification API.</li>
 *   <li>{@link dev.ferry.core.cpu.soft.SoftVcpuState} — one vCPU's progress and its
 *       {@code VmStateDescription}; what makes the workload continue on the destination.</li>
 *   <li>Package-private parts: {@code SoftPage} (the page layout, drawn there), {@code SplitMix64}
 *       (the replayable RNG), {@code DirtyPacer} (the page budget), {@code VcpuGate} (the pause
 *       handshake), {@code SoftVcpu} (the thread body), {@code WorkingSet} (page → host address),
 *       {@code SoftVerifier}.</li>
 * </ul>
 */
package dev.ferry.core.cpu.soft;
