package dev.ferry.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.core.migration.StreamText;
import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.stream.Qevm;
import dev.ferry.migration.transport.MigrationConnection;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The destination's reader of the main stream, after its magic: QEMU's
 * {@code qemu_loadvm_state}. It checks the version, calls every live handler's load setup, then
 * reads sections until EOF — each one's type, id, idstr, instance, version and footer checked,
 * nothing read from the stream sizing an allocation beyond fixed caps — answers the commands
 * (OPEN_RETURN_PATH, PING) through the {@link ReturnPathWriter}, refuses an EOF without every
 * participant's whole state, reads the trailing vmdesc, and asks every live handler to accept
 * what it loaded ({@code loadComplete}) before anything is answered or started.
 *
 * <p>Thread: the incoming thread only; one loader reads one stream once.
 */
final class StreamLoader {
    private final Machine machine;
    private final LoadContext context;
    private final ReturnPathWriter returnPath;
    private final MigrationConnection connection;
    private final Runnable active;
    /** When the first END section arrived: the source had stopped the VM (0 until then). */
    private long switchoverSeenNanos;

    /**
     * @param context what the live handlers' load setup gets (the switchover approval)
     * @param active  moves the migration to active once every handler's load setup is done
     */
    StreamLoader(Machine machine, LoadContext context, ReturnPathWriter returnPath, MigrationConnection connection,
                 Runnable active) {
        this.machine = machine;
        this.context = context;
        this.returnPath = returnPath;
        this.connection = connection;
        this.active = active;
    }

    /** When the first END section arrived (0 if none did). */
    long switchoverSeenNanos() {
        return switchoverSeenNanos;
    }

    /**
     * Reads the stream after its magic; {@code setupDone} collects every handler whose load setup
     * ran, for its cleanup whatever happens.
     */
    void load(ChannelLoadStream in, List<LiveSaveHandler> setupDone) throws IOException, MigrationException {
        int version = in.getBe32();
        if (version != Qevm.FILE_VERSION) {
            throw new MigrationException("unsupported migration stream version " + version + " (expected 3)");
        }
        List<SaveEntry> entries = machine.migration().entries();
        returnPath.expectApprovals(entries);
        for (SaveEntry e : entries) {
            if (e instanceof SaveEntry.Live live) {
                setupDone.add(live.handler());
                live.handler().loadSetup(context);
            }
        }
        active.run();
        Map<Integer, SaveEntry> sections = new HashMap<>();
        Map<Integer, Integer> versions = new HashMap<>();
        Set<SaveEntry> complete = new HashSet<>();
        while (true) {
            long offset = in.bytesRead();
            int type = in.getU8();
            switch (type) {
                case Qevm.EOF -> {
                    requireComplete(entries, complete);
                    readVmdesc(in);
                    // Every participant accepts what it loaded before anyone hears "done".
                    for (LiveSaveHandler h : setupDone) {
                        h.loadComplete();
                    }
                    return;
                }
                case Qevm.CONFIGURATION -> {
                    int len = in.getBe32();
                    if (len < 0 || len > Qevm.MAX_CONFIGURATION_LENGTH) {
                        throw new MigrationException("configuration section of " + (len & 0xffffffffL) + " bytes");
                    }
                    in.skip(len);
                }
                case Qevm.SECTION_START, Qevm.SECTION_FULL -> {
                    int id = in.getBe32();
                    int n = in.getU8();
                    byte[] name = new byte[n];
                    in.getBytes(name, 0, n);
                    String idstr = new String(name, StandardCharsets.UTF_8);
                    int instance = in.getBe32();
                    int ver = in.getBe32();
                    SaveEntry e = find(entries, idstr, name, instance);
                    idstr = e.idstr(); // ours from here on: the stream's bytes never reach a message
                    if (ver > e.version() || ver < 1) {
                        throw new MigrationException("section '" + idstr + "' instance " + instance + ": stream version "
                                + ver + ", this VM supports up to " + e.version());
                    }
                    if (type == Qevm.SECTION_START) {
                        if (!(e instanceof SaveEntry.Live)) {
                            throw new MigrationException("section '" + idstr + "' is not iterable but came as SECTION_START");
                        }
                        if (sections.containsKey(id)) {
                            throw new MigrationException("section id " + id + " started twice");
                        }
                        sections.put(id, e);
                        versions.put(id, ver);
                    }
                    loadSection(e, in, ver);
                    footer(in, id, idstr);
                    if (type == Qevm.SECTION_FULL) {
                        complete.add(e);
                    }
                }
                case Qevm.SECTION_PART, Qevm.SECTION_END -> {
                    int id = in.getBe32();
                    SaveEntry e = sections.get(id);
                    if (e == null) {
                        throw new MigrationException(Qevm.sectionTypeName(type) + " for unknown section id " + id);
                    }
                    if (complete.contains(e)) {
                        throw new MigrationException(Qevm.sectionTypeName(type) + " for section '" + e.idstr()
                                + "' after its END");
                    }
                    if (type == Qevm.SECTION_END && switchoverSeenNanos == 0) {
                        switchoverSeenNanos = System.nanoTime();
                    }
                    loadSection(e, in, versions.get(id));
                    footer(in, id, e.idstr());
                    if (type == Qevm.SECTION_END) {
                        complete.add(e);
                    }
                }
                case Qevm.COMMAND -> command(in);
                default -> throw new MigrationException(String.format(
                        "unknown section type 0x%02x at stream offset %d", type, offset));
            }
        }
    }

    /**
     * Refuses a stream that reached EOF without every participant's whole state: starting a VM
     * whose RAM or device state never arrived would run a guest on garbage.
     */
    private static void requireComplete(List<SaveEntry> entries, Set<SaveEntry> complete)
            throws MigrationException {
        List<String> missing = new ArrayList<>();
        for (SaveEntry e : entries) {
            if (!complete.contains(e) && !(e instanceof SaveEntry.VmState<?> vs && vs.optional())) {
                missing.add("'" + e.idstr() + "' instance " + e.instanceId());
            }
        }
        if (!missing.isEmpty()) {
            throw new MigrationException("the stream ended (EOF) without the complete state of " + String.join(", ", missing));
        }
    }

    private static SaveEntry find(List<SaveEntry> entries, String idstr, byte[] raw, int instance)
            throws MigrationException {
        for (SaveEntry e : entries) {
            if (e.idstr().equals(idstr) && e.instanceId() == instance) {
                return e;
            }
        }
        throw new MigrationException("unknown section '" + StreamText.escape(raw) + "' instance " + instance
                + ": this VM has no such device");
    }

    private static void loadSection(SaveEntry e, ChannelLoadStream in, int version)
            throws IOException, MigrationException {
        if (e instanceof SaveEntry.Live live) {
            live.handler().loadState(in, version);
        } else if (e instanceof SaveEntry.VmState<?> vs) {
            vs.load(in, version);
        }
    }

    private static void footer(ChannelLoadStream in, int id, String idstr) throws IOException, MigrationException {
        int t = in.getU8();
        if (t != Qevm.SECTION_FOOTER) {
            throw new MigrationException(String.format("section '%s' (id %d): expected footer 0x7e, found 0x%02x after %d bytes"
                    + " — the section data does not match this VM's layout", idstr, id, t, in.bytesRead() - 1));
        }
        int fid = in.getBe32();
        if (fid != id) {
            throw new MigrationException("section '" + idstr + "': footer names section " + fid + ", expected " + id);
        }
    }

    private void command(ChannelLoadStream in) throws IOException, MigrationException {
        int cmd = in.getBe16();
        int len = in.getBe16(); // each command checks its exact payload length; unknown ones are refused
        switch (cmd) {
            case Qevm.CMD_OPEN_RETURN_PATH -> {
                if (len != 0) { // QEMU's mig_cmd_args: no payload; never skip sections as "payload"
                    throw new MigrationException("OPEN_RETURN_PATH command with " + len + " bytes");
                }
                if (!connection.hasReturnPath()) {
                    throw new MigrationException("the source asked for a return path this transport lacks");
                }
                returnPath.open(connection);
            }
            case Qevm.CMD_PING -> {
                if (len != 4) {
                    throw new MigrationException("PING command with " + len + " bytes");
                }
                returnPath.pong(in.getBe32());
            }
            case Qevm.CMD_SWITCHOVER_START -> {
                if (len != 0) {
                    throw new MigrationException("SWITCHOVER_START command with " + len + " bytes");
                }
            }
            default -> throw new MigrationException("unsupported migration command " + cmd);
        }
    }

    /** Reads the optional trailing vmdesc; Ferry does not need it, but must not leave it unread. */
    private void readVmdesc(ChannelLoadStream in) throws IOException, MigrationException {
        if (connection.hasReturnPath()) {
            int t = in.getU8();
            if (t != Qevm.VMDESCRIPTION) {
                throw new MigrationException(String.format("expected the vmdesc after EOF, found 0x%02x", t));
            }
            int len = in.getBe32();
            if (len < 0 || len > Qevm.MAX_VMDESC_LENGTH) {
                throw new MigrationException("vmdesc of " + (len & 0xffffffffL) + " bytes");
            }
            in.skip(len);
        }
    }
}
