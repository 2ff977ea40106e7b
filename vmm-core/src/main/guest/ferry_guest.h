/*
 * ferry_guest.h: the ABI and the algorithm of ferry-guest, Ferry's built-in guest program
 * (version 1). It is a real-vCPU version of the soft engine's workload: it dirties guest memory
 * and keeps a progress record that can be checked after a live migration.
 *
 * guest.c builds this into the freestanding program. host_harness.c includes it too and runs
 * the same steps in an ordinary process for GuestLockstepTest. The Java mirror in
 * dev.ferry.core.cpu.guest (GuestAlgorithm, GuestPage, GuestMirror, GuestVerifier) follows the
 * text below line by line. Change both sides together, and raise FG_VERSION when the algorithm
 * or a layout changes.
 *
 * GUEST-PHYSICAL LAYOUT (identity-mapped, so a guest virtual address equals its GPA)
 *   0x000000-0x000fff  zero page. Reserved and never written.
 *   0x001000-0x001fff  boot parameters. The VMM writes them before the first run; the guest only
 *                      reads them.
 *   0x002000-0x002fff  progress record. The VMM zeroes it at boot; after that only the guest
 *                      writes it. Its address comes from the boot parameters.
 *   0x003000-0x003fff  GDT: null, kernel code64 0x08, kernel data 0x10, user code64 0x18
 *                      (selector 0x1b), user data 0x20 (0x23), 64-bit TSS 0x28 (two slots).
 *   0x004000-0x004fff  TSS: 104 zero bytes, written by the VMM.
 *   0x008000-0x00ffff  stack, 32 KiB. The initial RSP is 0x10000.
 *   0x010000-          page tables: PML4 at 0x10000, PDPT at 0x11000, then one PD per mapped
 *                      GiB from 0x12000 (at most 64, so they end by 0x52000). Each PD maps
 *                      2 MiB pages; the map is an identity map. Every entry has the U bit set,
 *                      so the map works in ring 3 as well as ring 0.
 *   0x100000-0x1fffff  program image: this header, then code, rodata and data. The loader
 *                      zero-fills it up to image_end.
 *   0x200000-          working set: ws_pages pages from ws_base, where ws_base >= 0x200000.
 *
 * The VMM sets CR0 = PE|ET|NE|PG, CR4 = PAE, EFER = LME|LMA, CR3 = 0x10000, flat 64-bit segments
 * that match the GDT, RSP = 0x10000, RIP = the image header's entry and RFLAGS = 0x3002
 * (IOPL 3, interrupts off). It loads no IDT, so any exception is a triple fault
 * (KVM_EXIT_SHUTDOWN). By default it runs the program in ring 3 (user segments). The program needs
 * no privilege: IOPL 3 allows OUT in ring 3, and OUT still exits to the VMM. Ring 0 works too.
 * Ring 3 is the default because a nested, page-table-based hypervisor (kvm_pvm) emulates ring-0
 * code one instruction at a time but runs ring-3 code natively: about 100 versus 1.7 million
 * steps per second. On VMX/SVM hardware both rings run natively. The program uses only plain
 * loads, stores, integer arithmetic (including div), MOV from CS, OUT and, in ring 0 only, HLT.
 * It uses no CPUID, no SSE and no locked instructions.
 *
 * BOOT PARAMETERS at 0x1000 (u64 words, little-endian)
 *   +0  magic "FerryBot"   +8  version (1)    +16 seed       +24 ws_base (GPA, 4 KiB aligned)
 *   +32 ws_pages (>= 1)    +40 pages_per_heartbeat (>= 1)    +48 max_steps (0 = run forever)
 *   +56 progress_gpa (4 KiB aligned, below 0x100000)
 *
 * PROGRESS RECORD at progress_gpa (u64 words)
 *   +0  magic "FerryPrg". Written last at initialisation, so 0 means "not started yet".
 *   +8  version (1)        +16 seed         +24 counter (the last completed step)
 *   +32 slot[0] = { counter, rng, hash, last_gpa }
 *   +64 slot[1] = { counter, rng, hash, last_gpa }
 * Step k first fills slot[k % 2] and only then stores counter = k. Whatever instruction the vCPU
 * stopped at, slot[counter % 2] is therefore a complete copy of the state after step `counter`.
 * It is next overwritten in step counter+2, which begins only after counter = counter+1.
 *
 * PAGE FORMAT (the soft engine's format with its own magic; 512 u64 words)
 *   w[0] = PAGE_MAGIC ^ gfn    w[1] = stamp k (1, 2, ...)    w[2] = vCPU index (0)
 *   w[3 + i] = scramble(b + (i + 1) * GAMMA) for i = 0..508, where b = mix(seed ^ t) and
 *              t = mix(gfn ^ mix(k))
 *   Store order: w[3], w[4], ..., w[511], then w[0], then w[2], then w[1] (the stamp) last.
 *
 * ALGORITHM (all arithmetic on u64, wrapping)
 *   mix(z):      z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB;
 *                return z ^ z>>31                                  (SplitMix64's finalizer)
 *   scramble(z): z = (z ^ z>>32) * 0xD6E8FEB86659FD93; return z ^ z>>32
 *   GAMMA = 0x9E3779B97F4A7C15
 *   Entry: read and check the boot parameters; if they are bad, stop with 0x80|reason.
 *     If record.magic != "FerryPrg", create the record: slot[0] = { 0, rng_0, hash_0, 0 },
 *     slot[1] = 0, version, seed, counter = 0, and magic last. Here
 *     rng_0 = mix(seed ^ mix(0x5EED000000000000 + vcpu)) with vcpu = 0, and
 *     hash_0 = mix(seed ^ HASH_IV). Then OUT STATUS_PORT, STARTED. If the record exists
 *     (version 1, same seed, slot[counter % 2].counter == counter), take counter, rng and hash
 *     from the slot and OUT STATUS_PORT, RESUMED. Any other record is fault 0x85 (stop with it).
 *   Loop: if max_steps != 0 and counter >= max_steps: stop with DONE.
 *     Otherwise run step k = counter + 1:
 *       rng_k  = rng_{k-1} + GAMMA
 *       p      = mix(rng_k) mod ws_pages          (a working-set page index)
 *       gfn    = ws_base / 4096 + p;  t = mix(gfn ^ mix(k))
 *       write page gfn with stamp k in the PAGE FORMAT and its store order
 *       hash_k = mix(hash_{k-1} ^ t)
 *       slot[k % 2] = { k, rng_k, hash_k, gfn * 4096 };  then record.counter = k
 *       if k % pages_per_heartbeat == 0: OUT HEARTBEAT_PORT, (u32) k
 *   Stop with S: repeat forever { OUT STATUS_PORT, S; HLT if in ring 0 }. In ring 3, which
 *     cannot halt, every repeat is another exit. The VMM stops running the vCPU once it sees
 *     DONE or a fault; the guest will do nothing else.
 *   The guest stores everything it needs between steps in guest memory (the record). Inside a
 *   step it also uses registers and its stack, and those migrate with the vCPU.
 *
 * WHAT A VERIFIER MAY ASSUME OF A GUEST STOPPED AT ANY INSTRUCTION (one vCPU, c = record.counter)
 *   R1  slot[c % 2] holds exactly { c, rng_c, hash_c, gpa of step c's page } (for c = 0:
 *       { 0, rng_0, hash_0, 0 }).
 *   R2  every page of the working set holds the content of the last step <= c that picked it,
 *       or is zero if no step picked it. The one exception is the in-flight page described in R3.
 *   R3  unless the guest is done (max_steps != 0 and c >= max_steps), the page q that step c+1
 *       picks may be partly written. Either its stamp word already reads c+1, and then the whole
 *       page is step c+1's content. Or its stamp word still holds the old stamp (0 if the page
 *       was never written): then w[2] is 0, w[0] is the old or the new magic word, and the body
 *       is step c+1's words up to some index followed by the old content's words.
 *
 * MORE THAN ONE vCPU (not in version 1): each vCPU would get its own partition of the working
 * set (as in the soft engine), its own record (progress_gpa + vcpu * 4096) and its own stack, and
 * would write its index into w[2].
 */
#ifndef FERRY_GUEST_H
#define FERRY_GUEST_H

#include <stdint.h>

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint16_t u16;

#define FG_VERSION           1
#define FG_PAGE_SIZE         4096
#define FG_PAGE_WORDS        512
#define FG_HEADER_WORDS      3
#define FG_BODY_WORDS        (FG_PAGE_WORDS - FG_HEADER_WORDS)

#define FG_BOOT_PARAMS_GPA   0x1000ULL
#define FG_IMAGE_GPA         0x100000ULL
#define FG_IMAGE_LIMIT_GPA   0x200000ULL  /* image ends below; working set starts at or above */
#define FG_MAX_WS_PAGES      (1ULL << 40) /* 4 PiB: keeps ws_base + ws_pages * 4096 in range */

#define FG_HEARTBEAT_PORT    0xF0
#define FG_STATUS_PORT       0xF1

#define FG_STATUS_STARTED    0x01u /* record created; counter 0 */
#define FG_STATUS_RESUMED    0x02u /* record found at entry; continuing from its counter */
#define FG_STATUS_DONE       0x03u /* counter reached max_steps; halting */
#define FG_FAULT_PARAMS      0x81u /* boot parameters: bad magic or version */
#define FG_FAULT_WORKING_SET 0x82u /* ws_base not aligned or below 2 MiB, ws_pages 0 or too big */
#define FG_FAULT_HEARTBEAT   0x83u /* pages_per_heartbeat is 0 */
#define FG_FAULT_PROGRESS    0x84u /* progress_gpa 0, not aligned, or not below the image */
#define FG_FAULT_RECORD      0x85u /* a record is present but has another version or seed, or is torn */

#define FG_IMAGE_MAGIC       0x4665727279496d67ULL /* "FerryImg" */
#define FG_PARAMS_MAGIC      0x4665727279426f74ULL /* "FerryBot" */
#define FG_PROGRESS_MAGIC    0x4665727279507267ULL /* "FerryPrg" */
#define FG_PAGE_MAGIC        0x4665727279477374ULL /* "FerryGst" */
#define FG_HASH_IV           0x4665727279487368ULL /* "FerryHsh" */
#define FG_RNG_IV            0x5EED000000000000ULL
#define FG_GAMMA             0x9E3779B97F4A7C15ULL

/*
 * Guest-physical address -> pointer. Inside the guest this is the identity map. The hosted
 * harness defines FG_PTR before including this file so that GPAs become offsets into its buffer.
 */
#ifndef FG_PTR
#define FG_PTR(gpa) ((volatile void *)(uintptr_t)(gpa))
#endif

/* The image header: the first 64 bytes at FG_IMAGE_GPA, which the VMM checks before loading. */
struct fg_image_header {
    u64 magic;          /* FG_IMAGE_MAGIC */
    u32 version;        /* FG_VERSION */
    u32 header_size;    /* sizeof(struct fg_image_header) = 64 */
    u64 load_gpa;       /* FG_IMAGE_GPA: where byte 0 of the flat binary must go */
    u64 entry_gpa;      /* the initial RIP */
    u64 image_end_gpa;  /* end of code+data; the loader zero-fills the gap past the file */
    u64 params_gpa;     /* FG_BOOT_PARAMS_GPA, compiled in */
    u32 heartbeat_port; /* FG_HEARTBEAT_PORT */
    u32 status_port;    /* FG_STATUS_PORT */
    u64 reserved;       /* 0 */
};

struct fg_boot_params {
    u64 magic, version, seed, ws_base, ws_pages, pages_per_heartbeat, max_steps, progress_gpa;
};

struct fg_slot {
    u64 counter, rng, hash, last_gpa;
};

struct fg_record {
    u64 magic, version, seed, counter;
    struct fg_slot slot[2];
};

/* The guest's state between steps (it mirrors slot[counter % 2]). */
struct fg_state {
    u64 counter, rng, hash;
};

static inline u64 fg_mix(u64 z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline u64 fg_scramble(u64 z)
{
    z = (z ^ (z >> 32)) * 0xD6E8FEB86659FD93ULL;
    return z ^ (z >> 32);
}

static inline u64 fg_initial_rng(u64 seed)
{
    return fg_mix(seed ^ fg_mix(FG_RNG_IV + 0 /* vCPU index */));
}

static inline u64 fg_initial_hash(u64 seed)
{
    return fg_mix(seed ^ FG_HASH_IV);
}

/* t = mix(gfn ^ mix(k)): feeds both the page body's seed and the hash chain. */
static inline u64 fg_step_tag(u64 gfn, u64 k)
{
    return fg_mix(gfn ^ fg_mix(k));
}

/* Writes page gfn with stamp k: body ascending, then w[0], then w[2], then the stamp w[1] last. */
static inline void fg_write_page(u64 gfn, u64 k, u64 seed, u64 tag)
{
    volatile u64 *w = (volatile u64 *)FG_PTR(gfn * FG_PAGE_SIZE);
    u64 s = fg_mix(seed ^ tag);
    for (u32 i = 0; i < FG_BODY_WORDS; i++) {
        s += FG_GAMMA;
        w[FG_HEADER_WORDS + i] = fg_scramble(s);
    }
    w[0] = FG_PAGE_MAGIC ^ gfn;
    w[2] = 0; /* vCPU index */
    w[1] = k;
}

/* Copies and checks the boot parameters; returns 0 or a FG_FAULT_* code. */
static inline u32 fg_read_params(struct fg_boot_params *p)
{
    const volatile struct fg_boot_params *bp =
        (const volatile struct fg_boot_params *)FG_PTR(FG_BOOT_PARAMS_GPA);
    p->magic = bp->magic;
    p->version = bp->version;
    p->seed = bp->seed;
    p->ws_base = bp->ws_base;
    p->ws_pages = bp->ws_pages;
    p->pages_per_heartbeat = bp->pages_per_heartbeat;
    p->max_steps = bp->max_steps;
    p->progress_gpa = bp->progress_gpa;
    if (p->magic != FG_PARAMS_MAGIC || p->version != FG_VERSION)
        return FG_FAULT_PARAMS;
    if (p->ws_base % FG_PAGE_SIZE != 0 || p->ws_base < FG_IMAGE_LIMIT_GPA || p->ws_base > (1ULL << 52)
            || p->ws_pages == 0 || p->ws_pages > FG_MAX_WS_PAGES)
        return FG_FAULT_WORKING_SET;
    if (p->pages_per_heartbeat == 0)
        return FG_FAULT_HEARTBEAT;
    if (p->progress_gpa == 0 || p->progress_gpa % FG_PAGE_SIZE != 0 || p->progress_gpa >= FG_IMAGE_GPA)
        return FG_FAULT_PROGRESS;
    return 0;
}

/* Creates the record or takes the state from it; returns a FG_STATUS_* or FG_FAULT_RECORD. */
static inline u32 fg_boot(const struct fg_boot_params *p, struct fg_state *s)
{
    volatile struct fg_record *r = (volatile struct fg_record *)FG_PTR(p->progress_gpa);
    if (r->magic != FG_PROGRESS_MAGIC) {
        s->counter = 0;
        s->rng = fg_initial_rng(p->seed);
        s->hash = fg_initial_hash(p->seed);
        r->slot[0].counter = 0;
        r->slot[0].rng = s->rng;
        r->slot[0].hash = s->hash;
        r->slot[0].last_gpa = 0;
        r->slot[1].counter = 0;
        r->slot[1].rng = 0;
        r->slot[1].hash = 0;
        r->slot[1].last_gpa = 0;
        r->version = FG_VERSION;
        r->seed = p->seed;
        r->counter = 0;
        r->magic = FG_PROGRESS_MAGIC;
        return FG_STATUS_STARTED;
    }
    u64 c = r->counter;
    volatile struct fg_slot *slot = &r->slot[c % 2];
    if (r->version != FG_VERSION || r->seed != p->seed || slot->counter != c)
        return FG_FAULT_RECORD;
    s->counter = c;
    s->rng = slot->rng;
    s->hash = slot->hash;
    return FG_STATUS_RESUMED;
}

/* True when the guest has run all its steps (max_steps != 0 and counter >= max_steps). */
static inline int fg_done(const struct fg_boot_params *p, const struct fg_state *s)
{
    return p->max_steps != 0 && s->counter >= p->max_steps;
}

/* One step k = counter + 1: write the page, extend the hash, publish slot then counter. */
static inline void fg_step(const struct fg_boot_params *p, struct fg_state *s)
{
    volatile struct fg_record *r = (volatile struct fg_record *)FG_PTR(p->progress_gpa);
    u64 k = s->counter + 1;
    u64 rng = s->rng + FG_GAMMA;
    u64 gfn = p->ws_base / FG_PAGE_SIZE + fg_mix(rng) % p->ws_pages;
    u64 tag = fg_step_tag(gfn, k);
    fg_write_page(gfn, k, p->seed, tag);
    u64 hash = fg_mix(s->hash ^ tag);
    volatile struct fg_slot *slot = &r->slot[k % 2];
    slot->counter = k;
    slot->rng = rng;
    slot->hash = hash;
    slot->last_gpa = gfn * FG_PAGE_SIZE;
    r->counter = k;
    s->counter = k;
    s->rng = rng;
    s->hash = hash;
}

#endif /* FERRY_GUEST_H */
