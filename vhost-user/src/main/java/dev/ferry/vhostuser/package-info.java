/**
 * vhost-user: a front-end that backs a virtio device with an external back-end process over a
 * UNIX socket, and a back-end library. {@code proto}: the message layer both sides stand on.
 */
package dev.ferry.vhostuser;
