package dev.ferry.vfio.check;

import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.function.UnaryOperator;

/**
 * A VFIO device that forwards to a healthy emulated VF, for tests that override one call to break
 * one rule the injected faults do not cover. Everything not overridden keeps the kernel's rules.
 */
class ForwardingVfioDevice extends dev.ferry.vfio.device.ForwardingVfioDevice {
    ForwardingVfioDevice(VfioDevice delegate) {
        super(delegate);
    }

    /** Emulated instances of {@code spec}, each device wrapped by {@code wrap}. */
    static CheckTarget target(EmulatedVfSpec spec, UnaryOperator<VfioDevice> wrap) {
        EmulatedCheckTarget inner = new EmulatedCheckTarget(spec);
        return new CheckTarget() {
            @Override
            public String description() {
                return "wrapped " + inner.description();
            }

            @Override
            public CheckedDevice open() {
                return wrapped(inner.open(), wrap);
            }

            @Override
            public Optional<CheckedDevice> openReplayable() {
                return inner.openReplayable().map(c -> wrapped(c, wrap));
            }
        };
    }

    private static CheckedDevice wrapped(CheckedDevice c, UnaryOperator<VfioDevice> wrap) {
        VfioDevice d = wrap.apply(c.device());
        return new CheckedDevice() {
            @Override
            public VfioDevice device() {
                return d;
            }

            @Override
            public Optional<dev.ferry.vfio.device.DmaSpace> dmaSpace() {
                return c.dmaSpace();
            }

            @Override
            public boolean advance(int steps) {
                return c.advance(steps);
            }

            @Override
            public OptionalLong stateDigest() {
                return c.stateDigest();
            }

            @Override
            public void close() {
                c.close();
            }
        };
    }
}
