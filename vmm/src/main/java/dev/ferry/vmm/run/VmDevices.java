package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.device.Device;
import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceKind;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.machine.Machine;
import dev.ferry.vmm.config.DeviceKinds;
import dev.ferry.vmm.config.VmConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The VM's config devices of registered kinds ({@link DeviceKinds}: virtio-blk, ...), built in
 * config order through one {@link DevicePlacement}, so a source and a destination started from
 * the same config place every device at the same address and interrupt line. Each device is
 * closed with the machine.
 */
final class VmDevices {
    private final List<Device> devices;

    private VmDevices(List<Device> devices) {
        this.devices = devices;
    }

    static VmDevices attach(VmConfig config, Machine machine, boolean incoming, DevicePlacement.StopRequests stops)
            throws VmmException {
        DevicePlacement placement = new DevicePlacement(machine, incoming, stops);
        List<Device> built = new ArrayList<>();
        for (int i = 0; i < config.devices().size(); i++) {
            VmConfig.DeviceConfig d = config.devices().get(i);
            Optional<DeviceKind> kind = DeviceKinds.find(d.kind());
            if (kind.isEmpty()) {
                continue; // a VFIO kind: VmVfs builds those
            }
            try {
                Device dev = kind.get().create(placement.contextFor(d.id()),
                        DeviceKinds.options("devices[" + i + "]", d.options()));
                machine.addDevice(dev);
                built.add(dev);
            } catch (DeviceConfigException e) {
                throw VmmException.generic(config.name() + ": " + e.getMessage());
            } catch (RuntimeException e) {
                throw VmmException.generic(config.name() + ": device " + d.id() + " (" + d.kind() + "): " + e.getMessage());
            }
        }
        return new VmDevices(List.copyOf(built));
    }

    List<Device> all() {
        return devices;
    }

    /** {@code x-ferry-devices}: every device's state and counters. */
    ArrayNode describe() {
        ArrayNode a = QapiJson.JSON.createArrayNode();
        for (Device d : devices) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("id", d.id());
            m.put("kind", d.kind());
            d.describe(m);
            a.add(QapiJson.JSON.valueToTree(m));
        }
        return a;
    }

}
