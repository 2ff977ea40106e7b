package dev.ferry.vmm.run;

import dev.ferry.vmm.config.VmConfig;
import dev.ferry.vmm.qmp.QmpServer;
import dev.ferry.vmm.qmp.QmpVersion;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A running VMM: a {@link Vmm} booted and served on a QMP socket. {@code ferry run} is one of
 * these per process; tests start several in one JVM. {@code quit} (or {@link #close()}) ends it.
 */
public final class VmmInstance implements AutoCloseable {
    /**
     * What Ferry's QMP greeting reports: the QEMU version whose QMP and migration behaviour Ferry
     * mirrors (7.2.0, so version-checking tools see the feature set they should expect), and
     * Ferry's own version as the package.
     */
    public static final QmpVersion VERSION = new QmpVersion(7, 2, 0, "ferry 0.1.0");

    private final Vmm vmm;
    private final QmpServer server;
    private final CountDownLatch quit = new CountDownLatch(1);
    private boolean closed;

    private VmmInstance(Vmm vmm, QmpServer server) {
        this.vmm = vmm;
        this.server = server;
    }

    /**
     * Boots the VM and opens its QMP socket. {@code incoming}: null (run the guest), {@code "defer"}
     * (wait for migrate-incoming) or a URI to listen on at once.
     */
    public static VmmInstance start(VmConfig cfg, Path qmp, String incoming, boolean paused, boolean verifyAtLoad)
            throws IOException, VmmException {
        return start(cfg, qmp, incoming, paused, verifyAtLoad, false);
    }

    /** As above; with {@code warmUp}, {@link Vmm#warmUpMigration} runs before the guest boots and QMP opens. */
    public static VmmInstance start(VmConfig cfg, Path qmp, String incoming, boolean paused, boolean verifyAtLoad,
                                    boolean warmUp) throws IOException, VmmException {
        AtomicReference<QmpServer> server = new AtomicReference<>();
        AtomicReference<VmmInstance> self = new AtomicReference<>();
        Vmm vmm = new Vmm(cfg, incoming != null, paused, verifyAtLoad, (name, data) -> {
            QmpServer s = server.get();
            if (s != null) {
                s.emit(name, data);
            }
        });
        try {
            if (warmUp) {
                long ns = vmm.warmUpMigration();
                if (ns >= 0) {
                    org.slf4j.LoggerFactory.getLogger(VmmInstance.class).info("{}: migration paths warmed up in {} ms",
                            cfg.name(), ns / 1_000_000);
                }
            }
            vmm.boot();
            QmpServer s = new QmpServer(qmp, VERSION, VmmQmpCommands.bind(vmm, a -> {
                self.get().quit.countDown();
                return null;
            }));
            server.set(s);
            VmmInstance instance = new VmmInstance(vmm, s);
            self.set(instance);
            if (incoming != null && !incoming.equals("defer")) {
                try {
                    vmm.migrateIncoming(incoming, true);
                } catch (VmmException e) {
                    instance.close();
                    throw e;
                }
            }
            return instance;
        } catch (IOException | RuntimeException | dev.ferry.core.machine.VmStateChangeException e) {
            QmpServer s = server.get();
            if (s != null) {
                s.close();
            }
            vmm.close();
            if (e instanceof IOException io) {
                throw io;
            }
            if (e instanceof RuntimeException re) {
                throw re;
            }
            throw VmmException.generic("starting the VM failed: " + e.getMessage());
        }
    }

    public Vmm vmm() {
        return vmm;
    }

    public Path qmpSocket() {
        return server.socketPath();
    }

    /** Blocks until a QMP client sent {@code quit} (or {@link #requestQuit()} was called). */
    public void awaitQuit() throws InterruptedException {
        quit.await();
    }

    public boolean awaitQuit(long timeout, TimeUnit unit) throws InterruptedException {
        return quit.await(timeout, unit);
    }

    /** What a signal does: the same as {@code quit}. */
    public void requestQuit() {
        quit.countDown();
    }

    /**
     * Closes the QMP server (after quit's reply went out), then the VM. Idempotent; a second
     * caller (a signal's shutdown hook racing the main thread) waits until the first finished.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        quit.countDown();
        server.close();
        vmm.close();
    }
}
