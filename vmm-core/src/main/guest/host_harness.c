/*
 * host_harness.c: runs ferry-guest's algorithm (ferry_guest.h, the same code guest.c runs) in an
 * ordinary process over a heap buffer that stands in for guest memory, so that
 * GuestLockstepTest can compare the C code with its Java mirror (GuestMirror) without KVM. It is
 * not part of the guest image.
 *
 * The test compiles it with -DSEED=... -DWS_PAGES=... -DPPH=... -DMAX_STEPS=... -DSTEPS_A=...
 * -DSTEPS_B=... and -I pointing here. It prints "NAME VALUE" lines (signed decimal) in the format
 * CProbe parses:
 *   params      fg_read_params' result (0 when the parameters are valid)
 *   boot1       fg_boot's status on a fresh record (1 = STARTED)
 *   a.counter, a.rng, a.hash, a.last   the state after STEPS_A steps (or fewer once done)
 *   boot2       fg_boot's status when entered again over the record (2 = RESUMED)
 *   b.*         the state after STEPS_B more steps
 *   digest      fold of every u64 word of [0, memory end) with fg_mix: d = mix(d ^ w)
 * The working set starts at 2 MiB. The boot parameters and the record go where the VMM puts them.
 */
#include <stdio.h>
#include <stdlib.h>

static unsigned char *fg_host_base;
#define FG_PTR(gpa) ((volatile void *)(fg_host_base + (gpa)))
#include "ferry_guest.h"

#define WS_BASE 0x200000ULL
#define PROGRESS_GPA 0x2000ULL

static void print_state(const char *prefix, const struct fg_state *s)
{
    const volatile struct fg_record *r = (const volatile struct fg_record *)FG_PTR(PROGRESS_GPA);
    printf("%s.counter %lld\n", prefix, (long long)s->counter);
    printf("%s.rng %lld\n", prefix, (long long)s->rng);
    printf("%s.hash %lld\n", prefix, (long long)s->hash);
    printf("%s.last %lld\n", prefix, (long long)r->slot[s->counter % 2].last_gpa);
}

static void run(const struct fg_boot_params *p, struct fg_state *s, u64 steps)
{
    for (u64 i = 0; i < steps && !fg_done(p, s); i++)
        fg_step(p, s);
}

int main(void)
{
    u64 size = WS_BASE + (u64)WS_PAGES * FG_PAGE_SIZE;
    fg_host_base = calloc(1, size);
    if (fg_host_base == NULL)
        return 1;
    volatile struct fg_boot_params *bp = (volatile struct fg_boot_params *)FG_PTR(FG_BOOT_PARAMS_GPA);
    bp->magic = FG_PARAMS_MAGIC;
    bp->version = FG_VERSION;
    bp->seed = (u64)SEED;
    bp->ws_base = WS_BASE;
    bp->ws_pages = WS_PAGES;
    bp->pages_per_heartbeat = PPH;
    bp->max_steps = MAX_STEPS;
    bp->progress_gpa = PROGRESS_GPA;

    struct fg_boot_params p;
    struct fg_state s;
    u32 fault = fg_read_params(&p);
    printf("params %u\n", fault);
    if (fault != 0)
        return 0;
    printf("boot1 %u\n", fg_boot(&p, &s));
    run(&p, &s, STEPS_A);
    print_state("a", &s);
    printf("boot2 %u\n", fg_boot(&p, &s));
    run(&p, &s, STEPS_B);
    print_state("b", &s);

    u64 d = 0;
    const u64 *w = (const u64 *)fg_host_base;
    for (u64 i = 0; i < size / 8; i++)
        d = fg_mix(d ^ w[i]);
    printf("digest %lld\n", (long long)d);
    free(fg_host_base);
    return 0;
}
