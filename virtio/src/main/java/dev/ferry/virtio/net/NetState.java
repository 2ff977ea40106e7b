package dev.ferry.virtio.net;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;

import java.io.IOException;

/**
 * virtio-net's device part of QEMU's {@code virtio} field: the facts of QEMU's
 * {@code virtio-net-device} (version 11) that apply to Ferry's device, written portably:
 * <pre>
 *   mac[6] | be32 tx_waiting (0) | be16 mergeable_rx_bufs | be16 status | u8 promisc | u8 allmulti
 *   | be32 mac_table.in_use | in_use x mac[6] | be32 has_vnet_hdr | u8 multi_overflow | u8 uni_overflow
 *   | u8 alluni | u8 nomulti | u8 nouni | u8 nobcast | be32 mac_table.first_multi (Ferry)
 * </pre>
 * A loaded state is checked whole before anything of it is used: a multicast MAC, tx_waiting set,
 * status bits virtio-net lacks, a table above 64 entries or a multicast part past it, and a
 * header-carrying source on a back-end without the header are refused with the reason. The
 * vhost-user-net front-end carries the same facts for its control queue (its back-end has the
 * header: {@code has_vnet_hdr} 1, as QEMU's vhost-user peer says).
 */
public record NetState(byte[] mac, int status, boolean promisc, boolean allmulti, boolean alluni, boolean nomulti,
                boolean nouni, boolean nobcast, boolean uniOverflow, boolean multiOverflow, byte[] table, int inUse,
                int firstMulti) {

    public static NetState of(byte[] mac, int status, RxFilter f) {
        return new NetState(mac.clone(), status, f.promisc, f.allmulti, f.alluni, f.nomulti, f.nouni, f.nobcast,
                f.uniOverflow, f.multiOverflow, f.table.clone(), f.inUse, f.firstMulti);
    }

    public void save(SaveStream out, boolean vnetHeader) throws IOException {
        for (byte b : mac) {
            out.putU8(b & 0xff);
        }
        out.putBe32(0); // tx_waiting: no TX is ever left half-done across a loop turn
        out.putBe16(1); // mergeable_rx_bufs as QEMU saves it (the negotiated features decide)
        out.putBe16(status);
        out.putU8(promisc ? 1 : 0);
        out.putU8(allmulti ? 1 : 0);
        out.putBe32(inUse);
        for (int i = 0; i < inUse * 6; i++) {
            out.putU8(table[i] & 0xff);
        }
        out.putBe32(vnetHeader ? 1 : 0);
        out.putU8(multiOverflow ? 1 : 0);
        out.putU8(uniOverflow ? 1 : 0);
        out.putU8(alluni ? 1 : 0);
        out.putU8(nomulti ? 1 : 0);
        out.putU8(nouni ? 1 : 0);
        out.putU8(nobcast ? 1 : 0);
        out.putBe32(firstMulti);
    }

    /** Reads and checks a state; {@code backend} is this side's (its header support must cover the source's). */
    static NetState load(LoadStream in, String id, NetBackend backend) throws IOException, MigrationException {
        return load(in, id, backend.vnetHeader(), backend.describe());
    }

    /**
     * Reads and checks a state; {@code vnetHeader} says whether this side's back-end ({@code here},
     * for the message) carries the header a source's may have.
     */
    public static NetState load(LoadStream in, String id, boolean vnetHeader, String here)
            throws IOException, MigrationException {
        byte[] m = new byte[6];
        for (int i = 0; i < 6; i++) {
            m[i] = (byte) in.getU8();
        }
        if ((m[0] & 1) != 0) {
            throw new MigrationException(id + ": the stream's MAC " + NetOptions.format(m) + " is a multicast address");
        }
        int txWaiting = in.getBe32();
        if (txWaiting != 0) {
            throw new MigrationException(id + ": the source left TX half-done (tx_waiting " + txWaiting + ")");
        }
        in.getBe16();
        int st = in.getBe16();
        if ((st & ~(NetConfig.S_LINK_UP | NetConfig.S_ANNOUNCE)) != 0) {
            throw new MigrationException(id + ": status 0x" + Integer.toHexString(st) + " has bits virtio-net lacks");
        }
        boolean promisc = in.getU8() != 0;
        boolean allmulti = in.getU8() != 0;
        int inUse = in.getBe32();
        if (inUse < 0 || inUse > RxFilter.TABLE_ENTRIES) {
            throw new MigrationException(id + ": MAC table of " + Integer.toUnsignedString(inUse)
                    + " entries, at most " + RxFilter.TABLE_ENTRIES);
        }
        byte[] table = new byte[RxFilter.TABLE_ENTRIES * 6];
        for (int i = 0; i < inUse * 6; i++) {
            table[i] = (byte) in.getU8();
        }
        int vnet = in.getBe32();
        if (vnet != 0 && !vnetHeader) {
            throw new MigrationException(id + ": the source's back-end carried the virtio-net header; "
                    + here + " here does not (QEMU: saved image requires vnet_hdr=on)");
        }
        boolean multiOverflow = in.getU8() != 0;
        boolean uniOverflow = in.getU8() != 0;
        boolean alluni = in.getU8() != 0;
        boolean nomulti = in.getU8() != 0;
        boolean nouni = in.getU8() != 0;
        boolean nobcast = in.getU8() != 0;
        int firstMulti = in.getBe32();
        if (firstMulti < 0 || firstMulti > inUse) {
            throw new MigrationException(id + ": MAC table's multicast part starts at " + firstMulti + " of " + inUse);
        }
        return new NetState(m, st, promisc, allmulti, alluni, nomulti, nouni, nobcast, uniOverflow, multiOverflow,
                table, inUse, firstMulti);
    }

    /** Sets {@code f} to this state's filter. */
    public void applyTo(RxFilter f) {
        f.promisc = promisc;
        f.allmulti = allmulti;
        f.alluni = alluni;
        f.nomulti = nomulti;
        f.nouni = nouni;
        f.nobcast = nobcast;
        f.uniOverflow = uniOverflow;
        f.multiOverflow = multiOverflow;
        f.table = table.clone();
        f.inUse = inUse;
        f.firstMulti = firstMulti;
    }
}
