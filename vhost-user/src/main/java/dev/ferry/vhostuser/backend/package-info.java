/**
 * The vhost-user back-end library: {@link dev.ferry.vhostuser.backend.VhostUserBackend} serves a
 * Ferry virtio device model to one front-end at a time (server or client socket mode) —
 * {@code BackendSession} applies each request, {@code DeviceRings} is the model's
 * {@code VirtioContext} over the front-end's mapped memory ({@code MemoryTable}), its vrings
 * ({@code Vring}) and its dirty log ({@code VhostLog}); {@code InflightRegion} and
 * {@code StateTransfer} carry blk inflight tracking and DEVICE_STATE. See {@code docs/vhost-user.md}.
 */
package dev.ferry.vhostuser.backend;
