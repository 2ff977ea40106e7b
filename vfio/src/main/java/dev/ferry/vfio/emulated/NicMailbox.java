package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.NativeMemory;

import static dev.ferry.vfio.emulated.NicRegisters.MBX_ADD_MAC;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_ADD_VLAN;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_CLEAR_FILTERS;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_DEL_MAC;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_DEL_VLAN;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_ERR_ARGUMENT;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_ERR_LENGTH;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_ERR_NOT_FOUND;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_ERR_OPCODE;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_ERR_TABLE_FULL;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_SET_MAC;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_SET_RSS_KEY;
import static dev.ferry.vfio.emulated.NicRegisters.RSS_KEY_SIZE;
import static dev.ferry.vfio.emulated.NicRegisters.TABLE_SIZE;

/**
 * What a mailbox message does to the NIC's filter (format in {@link NicRegisters}): a pure
 * function of the filter and the message bytes, which the VF has already read by DMA. A message
 * that fails changes nothing.
 */
final class NicMailbox {
    /** The filter after the message, and 0 or the error code the VF reports in MBX_STATUS. */
    record Outcome(NicFilter filter, int error) {
    }

    private NicMailbox() {
    }

    static Outcome apply(NicFilter f, long message, int length) {
        int op = NativeMemory.getInt(message);
        int args = NativeMemory.getInt(message + 4);
        if (args != length - 8) {
            return new Outcome(f, MBX_ERR_LENGTH);
        }
        long a = message + 8;
        return switch (op) {
            case MBX_SET_MAC, MBX_ADD_MAC, MBX_DEL_MAC -> args != 6 ? new Outcome(f, MBX_ERR_LENGTH)
                    : mac(f, op, NicWire.getMac(a));
            case MBX_ADD_VLAN, MBX_DEL_VLAN -> args != 2 ? new Outcome(f, MBX_ERR_LENGTH)
                    : vlan(f, op, NativeMemory.getShort(a) & 0xFFFF);
            case MBX_SET_RSS_KEY -> {
                if (args != RSS_KEY_SIZE) {
                    yield new Outcome(f, MBX_ERR_LENGTH);
                }
                byte[] key = new byte[RSS_KEY_SIZE];
                NativeMemory.copyToArray(a, key, 0, RSS_KEY_SIZE);
                yield new Outcome(f.withRssKey(key), 0);
            }
            case MBX_CLEAR_FILTERS -> args != 0 ? new Outcome(f, MBX_ERR_LENGTH) : new Outcome(f.withoutTables(), 0);
            default -> new Outcome(f, MBX_ERR_OPCODE);
        };
    }

    private static Outcome mac(NicFilter f, int op, long mac) {
        if (op == MBX_SET_MAC) {
            return NicRegisters.unicastMac(mac) ? new Outcome(f.withMac(mac), 0) : new Outcome(f, MBX_ERR_ARGUMENT);
        }
        if (op == MBX_ADD_MAC) {
            if (!NicState.tableMac(mac)) {
                return new Outcome(f, MBX_ERR_ARGUMENT);
            }
            if (!f.hasMac(mac) && f.macCount() == TABLE_SIZE) {
                return new Outcome(f, MBX_ERR_TABLE_FULL);
            }
            return new Outcome(f.withTableMac(mac), 0);
        }
        return f.hasMac(mac) ? new Outcome(f.withoutTableMac(mac), 0) : new Outcome(f, MBX_ERR_NOT_FOUND);
    }

    private static Outcome vlan(NicFilter f, int op, int vlan) {
        if (vlan < 1 || vlan > 4094) {
            return new Outcome(f, MBX_ERR_ARGUMENT);
        }
        if (op == MBX_ADD_VLAN) {
            if (!f.hasVlan(vlan) && f.vlanCount() == TABLE_SIZE) {
                return new Outcome(f, MBX_ERR_TABLE_FULL);
            }
            return new Outcome(f.withVlan(vlan), 0);
        }
        return f.hasVlan(vlan) ? new Outcome(f.withoutVlan(vlan), 0) : new Outcome(f, MBX_ERR_NOT_FOUND);
    }
}
