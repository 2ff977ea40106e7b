/**
 * vhost-user: a front-end that backs a virtio device with an external back-end process over a
 * UNIX socket, and a back-end library. Not built yet: see the open issues.
 */
package dev.ferry.vhostuser;
