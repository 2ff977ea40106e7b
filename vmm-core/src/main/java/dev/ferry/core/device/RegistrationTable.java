package dev.ferry.core.device;

import java.util.Arrays;
import java.util.function.Consumer;

/**
 * What an event loop's epoll tokens stand for: a table of registrations, each found by the 64-bit
 * token stored in its {@code epoll_event.data}, with no allocation and no map lookup per event.
 * <pre>
 *   63 62          32 31           0
 *   +--+------------+--------------+
 *   |0 | generation |    slot      |    token ≥ 0; {@link #NONE} (-1) is never one
 *   +--+------------+--------------+
 * </pre>
 * A slot's generation moves on when its registration is removed, so an event already read for a
 * removed registration (later in the same epoll batch) finds nothing instead of the slot's next
 * tenant.
 *
 * <p>Not thread-safe: the loop thread alone uses it.
 */
final class RegistrationTable<R> {
    /** Not a token: what a removed registration keeps. */
    static final long NONE = -1L;

    private Object[] entries = new Object[16];
    private int[] generations = new int[16];
    private int[] freeSlots = new int[16];
    private int freeCount;
    private int usedSlots;

    /** Stores {@code r}; returns its token. */
    long add(R r) {
        int slot;
        if (freeCount > 0) {
            slot = freeSlots[--freeCount];
        } else {
            if (usedSlots == entries.length) {
                int n = entries.length * 2;
                entries = Arrays.copyOf(entries, n);
                generations = Arrays.copyOf(generations, n);
                freeSlots = Arrays.copyOf(freeSlots, n);
            }
            slot = usedSlots++;
        }
        entries[slot] = r;
        return (long) generations[slot] << 32 | slot;
    }

    /** The registration {@code token} was given to, or null once it was removed. */
    @SuppressWarnings("unchecked")
    R get(long token) {
        int slot = (int) token;
        if (token < 0 || slot >= usedSlots || generations[slot] != (int) (token >>> 32)) {
            return null;
        }
        return (R) entries[slot];
    }

    /** Forgets {@code token}'s registration; a stale or {@link #NONE} token is ignored. */
    void remove(long token) {
        if (get(token) == null) {
            return;
        }
        int slot = (int) token;
        entries[slot] = null;
        generations[slot] = (generations[slot] + 1) & Integer.MAX_VALUE;
        freeSlots[freeCount++] = slot;
    }

    /** Removes every registration, handing each to {@code action}. */
    @SuppressWarnings("unchecked")
    void clear(Consumer<R> action) {
        for (int slot = 0; slot < usedSlots; slot++) {
            Object r = entries[slot];
            if (r != null) {
                remove((long) generations[slot] << 32 | slot);
                action.accept((R) r);
            }
        }
    }
}
