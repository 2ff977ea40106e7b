package dev.ferry.virtio;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.queue.SplitVirtqueue;

/** The {@link VirtioContext} a {@link VirtioMmio} transport gives its started model. */
final class MmioContext implements VirtioContext {
    private final VirtioMmio transport;

    MmioContext(VirtioMmio transport) {
        this.transport = transport;
    }

    @Override
    public DeviceMemory memory() {
        return transport.memory();
    }

    @Override
    public DeviceEventLoop loop() {
        return transport.loop();
    }

    @Override
    public long features() {
        return transport.guestFeatures();
    }

    @Override
    public SplitVirtqueue queue(int index) {
        return transport.servedQueue(index);
    }

    @Override
    public void notifyQueue(int index) {
        transport.notifyUsed(index);
    }

    @Override
    public void configChanged() {
        transport.configChangedByDevice();
    }

    @Override
    public void deviceError(String reason) {
        transport.deviceError(reason);
    }

    @Override
    public dev.ferry.core.sys.EventFd kickFd(int index) {
        return transport.kickFd(index);
    }

    @Override
    public dev.ferry.core.sys.EventFd renewKickFd(int index) {
        return transport.renewKick(index);
    }

    @Override
    public void interruptQueue(int index) {
        transport.raiseUsed(index);
    }
}
