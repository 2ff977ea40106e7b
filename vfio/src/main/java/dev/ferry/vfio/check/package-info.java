/**
 * The vendor check ({@code ferry vfio check}): {@link dev.ferry.vfio.check.VfioCheck} walks a
 * {@link dev.ferry.vfio.device.VfioDevice} through every arc its migration flags allow and holds
 * it to the uAPI's promises, each a named {@link dev.ferry.vfio.check.Rule}, returning a
 * {@link dev.ferry.vfio.check.CheckReport}. What is checked comes in through
 * {@link dev.ferry.vfio.check.CheckTarget} (fresh instances of one kind of device);
 * {@link dev.ferry.vfio.check.EmulatedCheckTarget} serves emulated VFs, kernel devices plug in
 * the same way.
 */
package dev.ferry.vfio.check;
