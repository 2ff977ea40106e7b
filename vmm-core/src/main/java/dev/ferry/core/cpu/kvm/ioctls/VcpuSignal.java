package dev.ferry.core.cpu.kvm.ioctls;

import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.Sys;

/**
 * The signal that kicks a vCPU thread out of KVM_RUN: SIGUSR1 sent with {@code tgkill} to that
 * one thread. KVM returns EINTR when a signal is pending, so the thread must have a handler (an
 * ignored signal is discarded and interrupts nothing; the default action would end the process).
 * The handler is the JVM's own, installed through {@code sun.misc.Signal}: in signal context it
 * only posts to the JVM's signal dispatcher thread, which runs an empty Java handler. Nothing
 * else in Ferry may use SIGUSR1.
 *
 * <p>A signal alone races with entry into KVM_RUN; {@link KvmVcpu#kick()} therefore sets
 * {@code kvm_run.immediate_exit} first. Numbers are x86-64 Linux; {@code KvmHeaderProbeTest}
 * checks them against {@code <signal.h>} and {@code <sys/syscall.h>}.
 */
public final class VcpuSignal {
    public static final int SIGUSR1 = 10;
    public static final int SYS_GETTID = 186;
    public static final int SYS_TGKILL = 234;

    private static boolean installed;

    private VcpuSignal() {
    }

    /** Installs the (empty) SIGUSR1 handler once per JVM. */
    @SuppressWarnings("restriction")
    static synchronized void install() {
        if (!installed) {
            sun.misc.Signal.handle(new sun.misc.Signal("USR1"), signal -> { });
            installed = true;
        }
    }

    /** The calling thread's kernel thread id. */
    static long currentTid() {
        return Sys.libc().syscall(SYS_GETTID, 0, 0, 0);
    }

    static long pid() {
        return Sys.libc().getpid();
    }

    /** Sends SIGUSR1 to thread {@code tid} of process {@code pid}. */
    static void send(long pid, long tid) {
        if (Sys.libc().syscall(SYS_TGKILL, pid, tid, SIGUSR1) < 0) {
            throw new NativeCallException("tgkill", Sys.errno(), "pid " + pid + ", tid " + tid + ", SIGUSR1");
        }
    }
}
