/**
 * The vhost-user front-end: virtio devices ({@link dev.ferry.vhostuser.frontend.VhostUserBlk},
 * {@link dev.ferry.vhostuser.frontend.VhostUserNet}) whose queues an external back-end serves over
 * a UNIX socket, with the back-end's shared dirty log as a migration dirty-log source and the
 * rings' indices carried in the transport's migration state.
 */
package dev.ferry.vhostuser.frontend;
