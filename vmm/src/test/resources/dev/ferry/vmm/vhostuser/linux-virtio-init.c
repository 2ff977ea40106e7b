/*
 * /init of the Linux guest that the LinuxGuestTest classes run under QEMU with vhost-user devices
 * served by Ferry's back-end. Static; it loads the virtio modules listed in /modules/order (in
 * that order, with finit_module), then drives the kernel's own virtio_blk or virtio_net driver
 * and reports on COM1, one "FERRY-..." line per result, then powers the VM off.
 *
 * Kernel command line: ferry.mode=blk | ferry.mode=net ferry.frames=N ferry.window=W ferry.patience=MS
 *   [ferry.mtu=M]
 *
 * blk (the disk is 16 MiB; the offsets are LinuxVirtioBlkTest's):
 *   reads 512 KiB at 4 MiB that the host filled with pattern H, checks it, prints its FNV-1a;
 *   writes pattern G over 256 KiB at 1 MiB in one request and over 8 single sectors from 8 MiB,
 *   fsync (a FLUSH), reads both back; discards 1 MiB at 12 MiB (BLKDISCARD) and zeroes 64 KiB at
 *   14 MiB (BLKZEROOUT) when the driver offers them, and reads the zeroed range back; with
 *   ferry.resize=1 then waits for the host to grow the disk (see grown()).
 * net: brings the first interface up and sends N sequence-numbered frames to the traffic peer
 *   over an AF_PACKET socket, at most W unanswered, checking every REPLY (order, echo, length,
 *   padding); prints the counts. With ferry.mtu=M the interface gets MTU M first (SIOCSIFMTU)
 *   and every other frame is a large one (JUMBO, up to M + 14 bytes). What is unanswered after MS
 *   milliseconds (default 10000) is given up. N = 0: sends until the VM is stopped, printing the
 *   counts every 1000 replies (a migration test reads them from the destination's COM1).
 * netmq (ferry.frames=N ferry.window=W per flow): one such flow per queue pair in use, each in a
 *   process pinned to its own CPU (XPS picks that CPU's tx queue) with flow byte = pair index;
 *   flow f sends N * (2 + f) / 2 frames; prints each flow's counts and the driver's per-queue
 *   counters (ethtool's), from which the test reads which queue carried which flow. With
 *   ferry.rounds=R each round after the first waits for the carrier to go off and on (the host
 *   replaces the back-end) and its flows have flow bytes of their own (round r: r * pairs + pair).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/fs.h>
#include <linux/sockios.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define HOST_AT (4 * MIB)
#define HOST_LEN (512 * 1024)
#define WRITE_AT (1 * MIB)
#define WRITE_LEN (256 * 1024)
#define SECTORS_AT (8 * MIB)
#define SECTOR_STRIDE 4608
#define SECTOR_COUNT 8
#define DISCARD_AT (12 * MIB)
#define DISCARD_LEN (1 * MIB)
#define ZERO_AT (14 * MIB)
#define ZERO_LEN (64 * 1024)

#define ETHERTYPE 0x88b5
#define MAX_FRAME (65535 + 14)
#define MAGIC 0x46525259u
#define DATA 1
#define REPLY 2
static const uint8_t PEER_MAC[6] = {0x02, 0xfe, 0, 0, 0, 0x01};

static char cmdline[4096];

static void finish(void)
{
    printf("FERRY-DONE\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

static void fail(const char *what)
{
    printf("FERRY-FAIL %s: %s\n", what, strerror(errno));
    finish();
}

static long option(const char *key, long fallback)
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

static void nap(void)
{
    struct timespec t = {0, 20 * 1000 * 1000};
    nanosleep(&t, NULL);
}

/* The first line of a file, or "" when it cannot be read. */
static void read_line(const char *path, char *out, size_t size)
{
    out[0] = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    out[n > 0 ? n : 0] = 0;
    out[strcspn(out, "\n")] = 0;
}

static void load_modules(void)
{
    FILE *order = fopen("/modules/order", "r");
    if (!order)
        fail("open /modules/order");
    char name[256];
    while (fgets(name, sizeof name, order)) {
        name[strcspn(name, "\n")] = 0;
        if (!name[0])
            continue;
        char path[300];
        snprintf(path, sizeof path, "/modules/%s", name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            fail(path);
        if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
            fail(path);
        close(fd);
        printf("FERRY-MODULE %s\n", name);
    }
    fclose(order);
}

/* ---- blk ---- */

static uint8_t pattern(uint64_t x, uint32_t mul, uint8_t salt)
{
    return (uint8_t)(((uint32_t)x * mul) >> 24) ^ (uint8_t)(x >> 9) ^ salt;
}

static uint8_t guest_byte(uint64_t x) { return pattern(x, 0x9e3779b1u, 0); }
static uint8_t host_byte(uint64_t x) { return pattern(x, 0x85ebca6bu, 0x3c); }

static void fill(uint8_t *buf, uint64_t at, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = guest_byte(at + i);
}

/* Bytes that differ from the guest pattern (which 0), the host pattern (1) or zero (2). */
static long mismatches(const uint8_t *buf, uint64_t at, size_t len, int which)
{
    long bad = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t want = which == 0 ? guest_byte(at + i) : which == 1 ? host_byte(at + i) : 0;
        bad += buf[i] != want;
    }
    return bad;
}

static void pread_all(int fd, uint8_t *buf, size_t len, uint64_t at)
{
    if (pread(fd, buf, len, at) != (ssize_t)len)
        fail("pread /vda");
}

static void pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t at)
{
    if (pwrite(fd, buf, len, at) != (ssize_t)len)
        fail("pwrite /vda");
}

static void grown(int fd, uint8_t *buf);

static void blk(void)
{
    char dev[64], line[128];
    double deadline = seconds() + 60;
    for (;;) {
        read_line("/sys/block/vda/dev", dev, sizeof dev);
        if (dev[0])
            break;
        if (seconds() > deadline) {
            errno = ENODEV;
            fail("no /sys/block/vda");
        }
        nap();
    }
    unsigned major, minor;
    if (sscanf(dev, "%u:%u", &major, &minor) != 2) {
        errno = EINVAL;
        fail("parse /sys/block/vda/dev");
    }
    if (mknod("/vda", S_IFBLK | 0600, makedev(major, minor)) != 0)
        fail("mknod /vda");
    read_line("/sys/block/vda/device/features", line, sizeof line);
    printf("FERRY-FEATURES %s\n", line);
    int fd = open("/vda", O_RDWR | O_DIRECT);
    if (fd < 0)
        fail("open /vda");
    uint8_t *buf;
    if (posix_memalign((void **)&buf, 4096, HOST_LEN) != 0)
        fail("posix_memalign");

    pread_all(fd, buf, HOST_LEN, HOST_AT);
    uint64_t fnv = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < HOST_LEN; i++)
        fnv = (fnv ^ buf[i]) * 0x100000001b3ull;
    long bad = mismatches(buf, HOST_AT, HOST_LEN, 1);
    pread_all(fd, buf, 3 * 512, HOST_AT + 5 * 512);
    bad += mismatches(buf, HOST_AT + 5 * 512, 3 * 512, 1);
    printf("FERRY-BLK-READ bytes=%d fnv=%016llx mismatches=%ld\n", HOST_LEN, (unsigned long long)fnv, bad);

    fill(buf, WRITE_AT, WRITE_LEN);
    pwrite_all(fd, buf, WRITE_LEN, WRITE_AT);
    for (int k = 0; k < SECTOR_COUNT; k++) {
        uint64_t at = SECTORS_AT + (uint64_t)k * SECTOR_STRIDE;
        fill(buf, at, 512);
        pwrite_all(fd, buf, 512, at);
    }
    if (fsync(fd) != 0)
        fail("fsync /vda");
    printf("FERRY-BLK-FLUSH ok\n");
    memset(buf, 0, WRITE_LEN);
    pread_all(fd, buf, WRITE_LEN, WRITE_AT);
    bad = mismatches(buf, WRITE_AT, WRITE_LEN, 0);
    for (int k = 0; k < SECTOR_COUNT; k++) {
        uint64_t at = SECTORS_AT + (uint64_t)k * SECTOR_STRIDE;
        pread_all(fd, buf, 512, at);
        bad += mismatches(buf, at, 512, 0);
    }
    printf("FERRY-BLK-WRITE bytes=%d readback-mismatches=%ld\n", WRITE_LEN + SECTOR_COUNT * 512, bad);

    read_line("/sys/block/vda/queue/discard_max_bytes", line, sizeof line);
    if (atol(line) > 0) {
        uint64_t range[2] = {DISCARD_AT, DISCARD_LEN};
        if (ioctl(fd, BLKDISCARD, range) != 0)
            fail("BLKDISCARD");
        printf("FERRY-BLK-DISCARD ok\n");
    } else {
        printf("FERRY-BLK-DISCARD not offered\n");
    }
    read_line("/sys/block/vda/queue/write_zeroes_max_bytes", line, sizeof line);
    long wz = atol(line);
    uint64_t range[2] = {ZERO_AT, ZERO_LEN};
    if (ioctl(fd, BLKZEROOUT, range) != 0)
        fail("BLKZEROOUT");
    pread_all(fd, buf, ZERO_LEN, ZERO_AT);
    printf("FERRY-BLK-ZEROOUT %s nonzero=%ld\n", wz > 0 ? "write-zeroes" : "written", mismatches(buf, ZERO_AT, ZERO_LEN, 2));
    if (strstr(cmdline, "ferry.resize=1"))
        grown(fd, buf);
    close(fd);
    finish();
}

/*
 * ferry.resize=1: the host grows the disk through its back-end once this prints RESIZE-WAIT; the
 * kernel hears of it by a config interrupt (CONFIG_CHANGE_MSG to QEMU, which raises it) and
 * updates /sys/block/vda/size. Then 64 KiB just past the old end is written with pattern G and
 * read back through the reopened device.
 */
static void grown(int fd, uint8_t *buf)
{
    char line[64];
    read_line("/sys/block/vda/size", line, sizeof line);
    long before = atol(line), now = before;
    printf("FERRY-BLK-RESIZE-WAIT sectors=%ld\n", before);
    double deadline = seconds() + 60;
    while (now == before && seconds() < deadline) {
        nap();
        read_line("/sys/block/vda/size", line, sizeof line);
        now = atol(line);
    }
    printf("FERRY-BLK-RESIZED sectors=%ld\n", now);
    if (now == before)
        return;
    close(fd);
    fd = open("/vda", O_RDWR | O_DIRECT);
    if (fd < 0)
        fail("reopen /vda");
    uint64_t at = (uint64_t)before * 512;
    fill(buf, at, 64 * 1024);
    pwrite_all(fd, buf, 64 * 1024, at);
    if (fsync(fd) != 0)
        fail("fsync /vda after the resize");
    memset(buf, 0, 64 * 1024);
    pread_all(fd, buf, 64 * 1024, at);
    printf("FERRY-BLK-BEYOND at=%llu mismatches=%ld\n", (unsigned long long)at, mismatches(buf, at, 64 * 1024, 0));
}

/* ---- net ---- */

/* ferry.mtu=M (net): eth0's MTU, set before it comes up; 0 leaves the kernel's 1500. */
static long mtu;

/*
 * Even sequence numbers' lengths with ferry.mtu: around the receive buffers' sizes of Linux's
 * virtio_net with MRG_RXBUF (at least 1536 bytes with the 12-byte header, at most 4096, or a
 * little less than 8192 when a page fragment's rest is added) and up to a 9000 MTU's frame.
 */
static const int JUMBO[] = {1515, 1524, 1525, 1536, 2048, 3000, 4084, 4085, 4096, 4097, 6000,
                            8168, 8180, 8181, 8192, 9000, 9014};

/* The length of DATA frame `seq` (and of its REPLY): 60..1514, or with ferry.mtu every other one from JUMBO. */
static int frame_length(uint64_t seq)
{
    if (mtu > 0 && seq % 2 == 0) {
        int len = JUMBO[(seq / 2) % (sizeof JUMBO / sizeof JUMBO[0])];
        return len > mtu + 14 ? (int)mtu + 14 : len;
    }
    return 60 + (int)((seq * 97) % 1455);
}

static uint8_t pad_byte(uint64_t seq, int i)
{
    return (uint8_t)(seq * 7 + i);
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/*
 * Finds the first interface besides lo, prints its acked features, brings it up, waits for the
 * carrier and prints FERRY-NET-UP; its name goes to ifname, its MAC to mac; returns its index.
 */
static int link_up(char *ifname, uint8_t *mac)
{
    char path[128], line[128];
    double deadline = seconds() + 60;
    while (!ifname[0]) {
        DIR *d = opendir("/sys/class/net");
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.' && strcmp(e->d_name, "lo") != 0 && strlen(e->d_name) < IFNAMSIZ)
                strcpy(ifname, e->d_name);
        }
        if (d)
            closedir(d);
        if (!ifname[0] && seconds() > deadline) {
            errno = ENODEV;
            fail("no network interface");
        }
        if (!ifname[0])
            nap();
    }
    snprintf(path, sizeof path, "/sys/class/net/%s/device/features", ifname);
    read_line(path, line, sizeof line);
    printf("FERRY-FEATURES %s\n", line);

    int ctl = socket(AF_INET, SOCK_DGRAM, 0);
    if (ctl < 0)
        fail("socket AF_INET");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, ifname);
    if (ioctl(ctl, SIOCGIFFLAGS, &ifr) != 0)
        fail("SIOCGIFFLAGS");
    if (mtu > 0) {
        ifr.ifr_mtu = (int)mtu;
        if (ioctl(ctl, SIOCSIFMTU, &ifr) != 0)
            fail("SIOCSIFMTU");
        if (ioctl(ctl, SIOCGIFMTU, &ifr) != 0)
            fail("SIOCGIFMTU");
        printf("FERRY-NET-MTU %d\n", ifr.ifr_mtu);
        if (ioctl(ctl, SIOCGIFFLAGS, &ifr) != 0)
            fail("SIOCGIFFLAGS");
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(ctl, SIOCSIFFLAGS, &ifr) != 0)
        fail("SIOCSIFFLAGS");
    if (ioctl(ctl, SIOCGIFHWADDR, &ifr) != 0)
        fail("SIOCGIFHWADDR");
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(ctl, SIOCGIFINDEX, &ifr) != 0)
        fail("SIOCGIFINDEX");
    close(ctl);
    snprintf(path, sizeof path, "/sys/class/net/%s/carrier", ifname);
    deadline = seconds() + 30;
    for (read_line(path, line, sizeof line); strcmp(line, "1") != 0; read_line(path, line, sizeof line)) {
        if (seconds() > deadline) {
            errno = ENOLINK;
            fail("no carrier");
        }
        nap();
    }
    printf("FERRY-NET-UP %s %02x:%02x:%02x:%02x:%02x:%02x\n", ifname, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    fflush(stdout);
    return ifr.ifr_ifindex;
}

/* An AF_PACKET socket for Ferry's traffic frames, bound to the interface. */
static int packet_socket(int ifindex)
{
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE));
    if (s < 0)
        fail("socket AF_PACKET");
    struct sockaddr_ll ll;
    memset(&ll, 0, sizeof ll);
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETHERTYPE);
    ll.sll_ifindex = ifindex;
    if (bind(s, (struct sockaddr *)&ll, sizeof ll) != 0)
        fail("bind AF_PACKET");
    return s;
}

/* What one flow's exchange with the traffic peer came to. */
struct counts {
    long sent, replies, bad, reorder, gaps, given_up, other;
};

/*
 * One flow's exchange over the AF_PACKET socket `s`: DATA frames with flow byte `flow` and
 * sequence numbers from 1, at most `window` unanswered, every REPLY of this flow checked (order,
 * echo, length, padding); replies of other flows are counted as other. What is unanswered after
 * `patience` ms is given up. `frames` == 0: until the VM is stopped, printing the counts every
 * 1000 replies. `cpu_seen` (or NULL) gets a CPU other than `cpu_wanted` that a send ran on.
 */
static void exchange(int s, const uint8_t *mac, int flow, int cpu_wanted, long frames, long window, long patience,
                     struct counts *c, int *cpu_seen)
{
    int forever = frames == 0;
    static uint8_t out[MAX_FRAME], in[MAX_FRAME];
    uint64_t last_reply = 0;
    while (forever || c->replies + c->given_up < frames) {
        while ((forever || c->sent < frames) && c->sent - c->replies - c->given_up < window) {
            uint64_t seq = (uint64_t)++c->sent;
            int len = frame_length(seq);
            memcpy(out, PEER_MAC, 6);
            memcpy(out + 6, mac, 6);
            out[12] = ETHERTYPE >> 8;
            out[13] = ETHERTYPE & 0xff;
            out[14] = (uint8_t)(MAGIC >> 24);
            out[15] = (uint8_t)(MAGIC >> 16);
            out[16] = (uint8_t)(MAGIC >> 8);
            out[17] = (uint8_t)MAGIC;
            out[18] = DATA;
            out[19] = (uint8_t)flow;
            put_be64(out + 20, seq);
            put_be64(out + 28, 0);
            for (int i = 36; i < len; i++)
                out[i] = pad_byte(seq, i);
            if (cpu_seen) {
                int cpu = sched_getcpu();
                if (cpu != cpu_wanted)
                    *cpu_seen = cpu;
            }
            if (send(s, out, len, 0) != len)
                fail("send AF_PACKET");
        }
        struct pollfd p = {s, POLLIN, 0};
        int r = poll(&p, 1, (int)patience);
        if (r < 0 && errno != EINTR)
            fail("poll");
        if (r == 0) {
            /* what is unanswered by now will not be: lost on the way out or back */
            c->given_up += c->sent - c->replies - c->given_up;
            continue;
        }
        ssize_t n = recv(s, in, sizeof in, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            fail("recv AF_PACKET");
        }
        if (n < 36 || memcmp(in + 14, out + 14, 4) != 0 || in[18] != REPLY)
            continue;
        if (in[19] != flow) {
            c->other++;
            continue;
        }
        uint64_t reply = get_be64(in + 20), echo = get_be64(in + 28);
        int ok = memcmp(in, mac, 6) == 0 && memcmp(in + 6, PEER_MAC, 6) == 0 && echo >= 1
                && echo <= (uint64_t)c->sent && n == frame_length(echo);
        for (int i = 36; ok && i < n; i++)
            ok = in[i] == pad_byte(echo, i);
        c->bad += !ok;
        c->reorder += reply <= last_reply;
        c->gaps += reply > last_reply + 1;
        if (reply > last_reply)
            last_reply = reply;
        c->replies++;
        if (forever && c->replies % 1000 == 0)
            printf("FERRY-NET-PROGRESS sent=%ld replies=%ld bad=%ld reorder=%ld gaps=%ld given-up=%ld\n", c->sent,
                   c->replies, c->bad, c->reorder, c->gaps, c->given_up);
    }
}

static void net(void)
{
    long frames = option("ferry.frames=", 1000);
    mtu = option("ferry.mtu=", 0);
    if (mtu < 0 || mtu > 65535) {
        errno = ERANGE;
        fail("ferry.mtu: 0..65535");
    }
    char ifname[IFNAMSIZ] = {0};
    uint8_t mac[6];
    int ifindex = link_up(ifname, mac);
    int s = packet_socket(ifindex);
    struct counts c = {0};
    exchange(s, mac, 0, -1, frames, option("ferry.window=", 16), option("ferry.patience=", 10000), &c, NULL);
    printf("FERRY-NET sent=%ld replies=%ld bad=%ld reorder=%ld gaps=%ld unanswered=%ld\n", c.sent, c.replies, c.bad,
           c.reorder, c.gaps, frames - c.replies);
    finish();
}

/* ---- netmq ---- */

/*
 * The driver's per-queue counters (what ethtool -S prints): every statistic whose name holds
 * "_queue_" as one FERRY-NETMQ-STAT name=value line.
 */
static void queue_stats(const char *ifname)
{
    int ctl = socket(AF_INET, SOCK_DGRAM, 0);
    if (ctl < 0)
        fail("socket AF_INET");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, ifname);
    struct {
        struct ethtool_sset_info info;
        uint32_t len;
    } sset = {{ETHTOOL_GSSET_INFO, 0, 1ull << ETH_SS_STATS}, 0};
    ifr.ifr_data = (void *)&sset;
    if (ioctl(ctl, SIOCETHTOOL, &ifr) != 0)
        fail("ETHTOOL_GSSET_INFO");
    uint32_t n = sset.info.sset_mask ? sset.len : 0;
    struct ethtool_gstrings *names = calloc(1, sizeof *names + (size_t)n * ETH_GSTRING_LEN);
    struct ethtool_stats *stats = calloc(1, sizeof *stats + (size_t)n * sizeof(uint64_t));
    if (!names || !stats)
        fail("calloc");
    names->cmd = ETHTOOL_GSTRINGS;
    names->string_set = ETH_SS_STATS;
    names->len = n;
    ifr.ifr_data = (void *)names;
    if (ioctl(ctl, SIOCETHTOOL, &ifr) != 0)
        fail("ETHTOOL_GSTRINGS");
    stats->cmd = ETHTOOL_GSTATS;
    stats->n_stats = n;
    ifr.ifr_data = (void *)stats;
    if (ioctl(ctl, SIOCETHTOOL, &ifr) != 0)
        fail("ETHTOOL_GSTATS");
    for (uint32_t i = 0; i < n; i++) {
        char name[ETH_GSTRING_LEN + 1];
        memcpy(name, names->data + (size_t)i * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
        name[ETH_GSTRING_LEN] = 0;
        if (strstr(name, "_queue_"))
            printf("FERRY-NETMQ-STAT %s=%llu\n", name, (unsigned long long)stats->data[i]);
    }
    free(names);
    free(stats);
    close(ctl);
}

/*
 * One flow of netmq, in a process pinned to CPU `pair` (XPS: that pair's tx queue): DATA frames
 * with flow byte `flow` and sequence numbers of their own, at most `window` unanswered; the flow
 * of pair p sends N * (2 + p) / 2 frames, so that each queue's count names its flow. Its socket
 * sees every reply (each flow's socket gets a copy); the other flows' replies are skipped
 * (counted as other).
 */
static void mq_flow(int pair, int flow, int round, int ifindex, const uint8_t *mac, int ready, int go)
{
    long frames = option("ferry.frames=", 1000) * (2 + pair) / 2;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(pair, &cpus);
    if (sched_setaffinity(0, sizeof cpus, &cpus) != 0)
        fail("sched_setaffinity");
    int s = packet_socket(ifindex);
    char ch = 0;
    if (write(ready, &ch, 1) != 1 || read(go, &ch, 1) != 1)
        fail("netmq start");
    struct counts c = {0};
    int cpu_seen = -1;
    exchange(s, mac, flow, pair, frames, option("ferry.window=", 16), option("ferry.patience=", 10000), &c, &cpu_seen);
    printf("FERRY-NETMQ flow=%d sent=%ld replies=%ld bad=%ld reorder=%ld gaps=%ld other=%ld unanswered=%ld"
           " other-cpu=%d round=%d\n", flow, c.sent, c.replies, c.bad, c.reorder, c.gaps, c.other, frames - c.replies,
           cpu_seen, round);
    fflush(stdout);
    _exit(0);
}

/* One round of netmq: one flow per pair (mq_flow), flow bytes from `first_flow`, all started at once. */
static void mq_round(int flows, int first_flow, int round, int ifindex, const uint8_t *mac)
{
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0)
        fail("pipe");
    pid_t kids[16];
    for (int f = 0; f < flows; f++) {
        kids[f] = fork();
        if (kids[f] < 0)
            fail("fork");
        if (kids[f] == 0)
            mq_flow(f, first_flow + f, round, ifindex, mac, ready[1], go[0]);
        char c;
        if (read(ready[0], &c, 1) != 1) /* its socket is bound before any flow sends */
            fail("netmq flow ready");
    }
    char start[16] = {0};
    if (write(go[1], start, flows) != flows)
        fail("netmq go");
    for (int f = 0; f < flows; f++) {
        int status;
        if (waitpid(kids[f], &status, 0) < 0)
            fail("waitpid");
    }
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}

/* The interface's carrier changes so far (/sys/class/net/IF/carrier_changes). */
static long carrier_changes(const char *ifname)
{
    char path[160], line[64];
    snprintf(path, sizeof path, "/sys/class/net/%s/carrier_changes", ifname);
    read_line(path, line, sizeof line);
    return atol(line);
}

/*
 * Between two rounds: the host replaces the back-end once this prints FERRY-NETMQ-ROUND (or
 * while round `round` still runs); QEMU takes the link down when the old one goes and up when it
 * has started the new one, and the driver (STATUS) turns the carrier off and on. Waits, within
 * ferry.relink=S seconds (default 180), until the carrier changed at least 2 * round times since
 * `base` (the count when the link first came up) and is on.
 */
static void await_relink(const char *ifname, int round, long base)
{
    char path[160], carrier[16] = "";
    long now = carrier_changes(ifname);
    printf("FERRY-NETMQ-ROUND %d done carrier-changes=%ld base=%ld\n", round, now, base);
    fflush(stdout);
    double deadline = seconds() + option("ferry.relink=", 180);
    snprintf(path, sizeof path, "/sys/class/net/%s/carrier", ifname);
    int off_seen = 0;
    for (;;) {
        now = carrier_changes(ifname);
        read_line(path, carrier, sizeof carrier);
        off_seen |= strcmp(carrier, "0") == 0;
        if (now >= base + 2 * round && strcmp(carrier, "1") == 0)
            break;
        if (seconds() > deadline) {
            errno = ETIMEDOUT;
            printf("FERRY-NETMQ-RELINK carrier-changes=%ld carrier=%s\n", now, carrier);
            fail("the link did not go down and come back up");
        }
        nap();
    }
    printf("FERRY-NETMQ-RELINK carrier-changes=%ld off-seen=%d\n", now, off_seen);
    fflush(stdout);
}

/*
 * ferry.mode=netmq: the NIC's queue pairs in use (one per online CPU, at most the device's),
 * their XPS CPUs, then one flow per pair (mq_round), then the driver's per-queue counters. With
 * ferry.rounds=R (1..8) the rounds after the first wait for the link to go down and up again
 * (await_relink) and use flow bytes of their own (round r: r * pairs + pair, from 0).
 */
static void netmq(void)
{
    char ifname[IFNAMSIZ] = {0}, path[160], line[128];
    uint8_t mac[6];
    int ifindex = link_up(ifname, mac);
    int flows = 0;
    for (;; flows++) {
        snprintf(path, sizeof path, "/sys/class/net/%s/queues/tx-%d/xps_cpus", ifname, flows);
        if (access(path, F_OK) != 0)
            break;
        read_line(path, line, sizeof line);
        printf("FERRY-NETMQ-XPS tx-%d cpus=%s\n", flows, line);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("FERRY-NETMQ-QUEUES tx=%d cpus=%ld\n", flows, cpus);
    if (flows > cpus)
        flows = (int)cpus;
    if (flows < 1 || flows > 16) {
        errno = ERANGE;
        fail("netmq: 1..16 flows");
    }
    long base = carrier_changes(ifname);
    long rounds = option("ferry.rounds=", 1);
    if (rounds < 1 || rounds > 8) {
        errno = ERANGE;
        fail("ferry.rounds: 1..8");
    }
    for (int r = 0; r < rounds; r++) {
        if (r > 0)
            await_relink(ifname, r, base);
        mq_round(flows, r * flows, r + 1, ifindex, mac);
        queue_stats(ifname);
    }
    finish();
}

int main(void)
{
    mkdir("/dev", 0755);
    mkdir("/proc", 0755);
    mkdir("/sys", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    int tty = open("/dev/ttyS0", O_WRONLY);
    if (tty >= 0) {
        dup2(tty, 1);
        dup2(tty, 2);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    read_line("/proc/cmdline", cmdline, sizeof cmdline);
    printf("FERRY-INIT %s\n", cmdline);
    load_modules();
    if (strstr(cmdline, "ferry.mode=blk"))
        blk();
    if (strstr(cmdline, "ferry.mode=netmq"))
        netmq();
    if (strstr(cmdline, "ferry.mode=net"))
        net();
    errno = EINVAL;
    fail("no ferry.mode=blk|net|netmq on the command line");
    return 1;
}
