/**
 * The device runtime every emulated or external device stands on.
 *
 * <ul>
 *   <li>{@link dev.ferry.core.device.DeviceEventLoop} — the machine's one epoll loop: eventfds,
 *       sockets and timers with handlers; pauses with the VM (tasks given to {@code call} still run,
 *       so devices drain and save with the VM stopped).</li>
 *   <li>{@link dev.ferry.core.device.InterruptController} / {@link dev.ferry.core.device.InterruptLine}
 *       — the one interrupt SPI: a level per GSI. The soft engine's
 *       {@link dev.ferry.core.device.SoftInterruptController} migrates its pending lines.</li>
 *   <li>{@link dev.ferry.core.device.DeviceKind}, {@link dev.ferry.core.device.DeviceOptions},
 *       {@link dev.ferry.core.device.DeviceContext}, {@link dev.ferry.core.device.Device} — a kind
 *       builds a device from a config entry; kinds are found by {@link java.util.ServiceLoader}.</li>
 *   <li>{@link dev.ferry.core.device.DevicePlacement} — register windows and GSIs handed out in config
 *       order, identical on a migration's two sides.</li>
 * </ul>
 * See {@code docs/devices.md} for how to write a device, with virtio-blk as the worked example.
 */
package dev.ferry.core.device;
