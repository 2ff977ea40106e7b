/**
 * ferry-guest: Ferry's built-in guest program for real vCPUs, and the Java side that boots it
 * and verifies it. The program ({@code vmm-core/src/main/guest}, freestanding C) runs in 64-bit
 * long mode. It dirties pages of a working set, keeps a monotonic counter and a hash chain in a
 * progress record in guest memory, and reports heartbeats on port 0xF0. It is the soft engine's
 * workload run on a KVM vCPU. After a migration, {@link dev.ferry.core.cpu.guest.GuestVerifier}
 * proves that it continued exactly.
 *
 * <ul>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestLayout}: the guest-physical map (drawn there) and
 *       {@code prepare()}, the VMM's part of a fresh boot.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestBootState}: the registers and segments to set
 *       before the first KVM_RUN.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.PageTables}: the 2 MiB identity map, and a walker.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestProgram}: the flat binary from the classpath, with
 *       its header checked.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestParams}: the boot-parameter page.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestProgress}: the progress record.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestStatus}: the status-port codes.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestMirror}: the program run in Java, the reference.</li>
 *   <li>{@link dev.ferry.core.cpu.guest.GuestVerifier} and
 *       {@link dev.ferry.core.cpu.guest.GuestCheck}: the continuation proof.</li>
 *   <li>Package-private: {@code GuestAlgorithm} (the arithmetic, with the algorithm's text) and
 *       {@code GuestPage} (the page format).</li>
 * </ul>
 */
package dev.ferry.core.cpu.guest;
