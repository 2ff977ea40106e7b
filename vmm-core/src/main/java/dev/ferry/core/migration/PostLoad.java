package dev.ferry.core.migration;

/**
 * Validates and completes a state after a {@link VmStateDescription} loaded it (QEMU's
 * {@code post_load}): it runs once, after all of the description's fields and subsections, on the
 * incoming thread, before anything else sees the object. The stream is hostile, so this is where
 * cross-field rules are checked (a ring index beyond the ring's size, a feature the device does not
 * offer). A {@link MigrationException} or {@link IllegalArgumentException} thrown here fails the
 * load; the description puts its name in front of the message.
 *
 * @param <T> the object holding the state
 */
@FunctionalInterface
public interface PostLoad<T> {
    /**
     * @param streamVersion the version the stream carried for this description (at most
     *                      {@link VmStateDescription#version()}); fields added later kept their values
     */
    void afterLoad(T obj, int streamVersion) throws MigrationException;
}
