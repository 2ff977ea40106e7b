package dev.ferry.core.memory;

/**
 * Anything that can report guest pages it dirtied: the KVM slot log, a vhost-user shared log, a
 * VFIO device's DMA log, the VMM's own writes. RAM migration starts every source at setup, syncs
 * them all into its bitmap at each pass, and stops them at cleanup.
 *
 * <p>Called from the migration thread only. {@code sync} must report every page written since
 * the previous sync (or since {@code start}); reporting extra pages is allowed, missing one is a
 * correctness bug. A source that cannot track must mark everything it can reach on every sync.
 */
public interface DirtyLogSource {
    /** A short name for statistics and errors, e.g. {@code "kvm"} or {@code "vfio0 dma"}. */
    String name();

    /** Begins tracking; pages written from now on will be reported. */
    void start();

    /** ORs the pages dirtied since the last sync into {@code target} and re-arms tracking. */
    void sync(DirtyPages target);

    /** Ends tracking. Idempotent. */
    void stop();
}
