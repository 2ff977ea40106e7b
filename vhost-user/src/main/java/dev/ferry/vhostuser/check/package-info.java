/**
 * {@code ferry vhost-user check}: a vhost-user front-end of its own that holds a back-end to the
 * promises a live migration depends on ({@link dev.ferry.vhostuser.check.CheckRule}) — negotiation,
 * reply flags and acks, a shared dirty log that names every page the back-end wrote, GET_VRING_BASE
 * and a restored ring, SET_VRING_ENABLE(0), malformed requests — over a guest memory and rings it
 * owns, with real blk or net traffic. {@link dev.ferry.vhostuser.check.VhostUserCheck#run} is the
 * entry point; {@link dev.ferry.vhostuser.check.VhostUserBlkLoad} reuses the check's driver as the
 * load of {@code ferry bench vhost-user-blk}.
 */
package dev.ferry.vhostuser.check;
