/*
 * The signal and system call numbers dev.ferry.core.cpu.kvm.ioctls.VcpuSignal uses to kick a
 * vCPU thread out of KVM_RUN (x86-64), as the host's headers define them; KvmHeaderProbeTest
 * compares them.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>

#include "ferry_probe.h"

int main(void) {
    FERRY_PROBE(SIGUSR1);
    FERRY_PROBE(SYS_gettid);
    FERRY_PROBE(SYS_tgkill);
    return 0;
}
