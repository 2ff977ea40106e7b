/**
 * The VM a device lives in: {@link dev.ferry.core.machine.Machine} holds guest memory, the vCPU
 * engine, the port-I/O and MMIO buses, the device event loop, the interrupt controller and the
 * migration registry, and runs QEMU's run-state protocol.
 *
 * <h2>What a device author uses here</h2>
 * <ul>
 *   <li>{@link dev.ferry.core.machine.IoBus} / {@link dev.ferry.core.machine.BusDevice} — a register
 *       window on {@code machine.mmio()} (or {@code pio()}); accesses arrive on vCPU threads.</li>
 *   <li>{@link dev.ferry.core.machine.VmChangeStateHandler} — follow the run state: on stop, finish or
 *       park what is in flight so that the stopped VM's device touches neither guest memory nor
 *       interrupts; on start, serve again. A {@code prepare} stage runs for every handler before
 *       any main stage (VFIO's P2P quiescing).</li>
 *   <li>{@code machine.eventLoop()}, {@code machine.interrupts()}, {@code machine.deviceMemory()} —
 *       the device runtime of {@link dev.ferry.core.device}.</li>
 *   <li>{@link dev.ferry.core.machine.RunState} — QEMU's run-state names.</li>
 * </ul>
 * Order on stop: vCPUs pause, the device event loop pauses (no handler runs; tasks still do), the
 * handlers run in descending priority. On start: handlers in ascending priority, the loop
 * resumes, the vCPUs resume. See {@code docs/devices.md}.
 */
package dev.ferry.core.machine;
