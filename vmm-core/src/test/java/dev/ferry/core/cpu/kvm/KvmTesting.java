package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.ioctls.Kvm;

import java.util.Optional;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Shared guard for tests that need a usable /dev/kvm. */
final class KvmTesting {
    private static Optional<String> unavailable;

    private KvmTesting() {
    }

    /** Skips the calling test, saying why, when KVM cannot be used here. Checked once per JVM. */
    static synchronized void assumeKvm() {
        if (unavailable == null) {
            unavailable = Kvm.available();
        }
        assumeTrue(unavailable.isEmpty(), () -> "KVM tests skipped: " + unavailable.orElse(""));
    }
}
