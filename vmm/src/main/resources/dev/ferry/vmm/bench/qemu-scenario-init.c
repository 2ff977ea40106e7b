/*
 * The Linux guest of QEMU's migration benchmark scenario, run by the kernel as /init from an
 * initramfs (static, no libc beyond what gcc -static links). It fills a buffer with random,
 * incompressible data, says FERRY-READY on the serial console, then dirties random pages of the
 * buffer at a steady rate, one 8-byte word per page, every 10 ms, until the VM is powered off.
 * Kernel command line: ferry.fill=<MiB> ferry.rate=<MiB/s>.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t state = 0x9e3779b97f4a7c15ull;

static inline uint64_t xorshift(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static long option(const char *cmdline, const char *key, long fallback)
{
    const char *p = strstr(cmdline, key);
    return p ? atol(p + strlen(key)) : fallback;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void)
{
    mkdir("/dev", 0755);
    mkdir("/proc", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    int tty = open("/dev/ttyS0", O_WRONLY);
    if (tty >= 0) {
        dup2(tty, 1);
        dup2(tty, 2);
    }
    char cmdline[4096] = {0};
    int c = open("/proc/cmdline", O_RDONLY);
    if (c >= 0) {
        if (read(c, cmdline, sizeof cmdline - 1) < 0)
            cmdline[0] = 0;
        close(c);
    }
    long fill = option(cmdline, "ferry.fill=", 700) << 20;
    long rate = option(cmdline, "ferry.rate=", 40) << 20;
    uint64_t *buf = mmap(NULL, fill, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED) {
        printf("FERRY-ERROR cannot map %ld MiB\n", fill >> 20);
        fflush(stdout);
        for (;;)
            pause();
    }
    double t0 = seconds();
    for (long i = 0; i < fill / 8; i++)
        buf[i] = xorshift();
    printf("FERRY-READY filled %ld MiB in %.2f s, dirtying %ld MiB/s\n", fill >> 20, seconds() - t0, rate >> 20);
    fflush(stdout);
    long pages = fill / 4096;
    long per_tick = rate / 4096 / 100;
    double tick = seconds();
    for (unsigned long round = 1;; round++) {
        for (long i = 0; i < per_tick; i++) {
            uint64_t r = xorshift();
            buf[(r % pages) * 512 + (r >> 40) % 512] = r;
        }
        tick += 0.01;
        double wait = tick - seconds();
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
        else if (wait < -1)
            tick = seconds(); /* the VM was stopped: resume the rate, do not catch up in a burst */
        if (round % 500 == 0) {
            printf("FERRY-ALIVE %lu\n", round);
            fflush(stdout);
        }
    }
}
