package dev.ferry.vhostuser.frontend;

import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.migration.MigrationEvent;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationNotifier;
import dev.ferry.vhostuser.proto.VhostUserException;

/**
 * A vhost-user device's part in RAM migration: its back-end's shared dirty log as a
 * {@link DirtyLogSource}, and a {@link MigrationNotifier} that vetoes a migration's setup while
 * the back-end is not connected (its writes could not be logged). The protocol steps run on the
 * device's loop ({@code loop.call}); the harvest runs on the migration thread over the
 * {@link SharedDirtyLog} the device owns.
 */
final class BackendLog implements DirtyLogSource, MigrationNotifier {
    private final VhostUserDevice d;

    BackendLog(VhostUserDevice device) {
        this.d = device;
    }

    @Override
    public String name() {
        return d.id + " vhost-user log";
    }

    @Override
    public void onMigrationEvent(MigrationEvent event) throws MigrationException {
        if (event == MigrationEvent.SETUP) {
            String lost = d.loop.call(() -> d.link.frontend() == null ? String.valueOf(d.link.lostReason()) : null);
            if (lost != null) {
                throw new MigrationException(d.who() + ": the vhost-user back-end at " + d.options.socket()
                        + " is not connected (" + lost + "); migration cancelled, the VM runs on");
            }
        }
    }

    /** SET_LOG_BASE, LOG_ALL and the used-ring log flag now, or at the rings' next start. */
    @Override
    public void start() {
        d.loop.call(() -> {
            VhostUserFrontend fe = d.link.frontend();
            if (fe == null) {
                throw new IllegalStateException(d.who() + ": the vhost-user back-end at " + d.options.socket()
                        + " is not connected (" + d.link.lostReason() + "): it cannot log its writes; migration cancelled");
            }
            SharedDirtyLog l = new SharedDirtyLog(d.id, d.memory);
            d.log = l;
            d.link.forgetLossWhileLogging();
            if (d.rings.running()) {
                try {
                    fe.setLogBase(l.fd(), l.size());
                    fe.setFeatures(d.backendAcked(d.ctx.features()), true);
                    d.rings.setLogFlag(true);
                } catch (VhostUserException e) {
                    d.backendLost(e.getMessage());
                    throw new IllegalStateException(d.who() + ": starting the vhost-user dirty log failed: "
                            + e.getMessage(), e);
                }
            }
            return null;
        });
    }

    /**
     * Harvests the log; a back-end lost since the log started fails the migration, even when a
     * new one took its place before this sync: the lost one's writes after its last logged page
     * and the requests it held cannot be accounted for.
     */
    @Override
    public void sync(DirtyPages target) {
        SharedDirtyLog l = d.log;
        if (l != null) {
            l.harvest(target);
        }
        String lost = d.loop.call(() -> d.link.frontend() == null ? d.link.lostReason() : null);
        if (lost != null) {
            throw new IllegalStateException(d.who() + ": the vhost-user back-end at " + d.options.socket()
                    + " failed during migration: " + lost);
        }
        String replaced = d.link.lostWhileLogging();
        if (replaced != null) {
            throw new IllegalStateException(d.who() + ": the vhost-user back-end at " + d.options.socket()
                    + " failed during migration: " + replaced + " (a new back-end took its place, but what the"
                    + " lost one wrote after its last logged page cannot be accounted for)");
        }
    }

    /** LOG_ALL and the log flag cleared on running rings; the log freed. */
    @Override
    public void stop() {
        d.loop.call(() -> {
            VhostUserFrontend fe = d.link.frontend();
            if (d.rings.running() && fe != null) {
                try {
                    fe.setFeatures(d.backendAcked(d.ctx.features()), false);
                    d.rings.setLogFlag(false);
                } catch (VhostUserException e) {
                    d.backendLost(e.getMessage());
                }
            }
            if (d.log != null) {
                d.loggedPagesBefore += d.log.pagesReported();
                d.log.close();
                d.log = null;
            }
            d.link.forgetLossWhileLogging();
            return null;
        });
    }
}
