/*
 * guest.c: ferry-guest, the freestanding 64-bit program that Ferry's KVM engine runs. The
 * layout, the ABI and the algorithm are described once, in ferry_guest.h. This file adds what
 * only a real vCPU can do: the entry point, the image header the VMM checks, port I/O and HLT.
 * The code runs in ring 3 (the default) or ring 0.
 *
 * Built by vmm-core's pom.xml (profile "guest-program", active when /usr/bin/gcc exists; the exact
 * flags are there): gcc -ffreestanding -nostdlib -static -no-pie -fno-pic -mgeneral-regs-only
 * -mno-red-zone -mcmodel=small -O2 ... -Wl,-T,guest.ld, then objcopy -O binary into
 * target/classes/dev/ferry/core/cpu/guest/ferry-guest.bin.
 * The flat binary's byte 0 goes at guest-physical FG_IMAGE_GPA (1 MiB).
 */
#include "ferry_guest.h"

void ferry_guest_main(void) __attribute__((noreturn, used));
extern char _start[];
extern char __image_end[];

/* The linker script places this section first, at FG_IMAGE_GPA. */
__attribute__((section(".ferry.header"), used))
static const struct fg_image_header fg_header = {
    .magic = FG_IMAGE_MAGIC,
    .version = FG_VERSION,
    .header_size = sizeof(struct fg_image_header),
    .load_gpa = FG_IMAGE_GPA,
    .entry_gpa = (u64)(uintptr_t)_start,
    .image_end_gpa = (u64)(uintptr_t)__image_end,
    .params_gpa = FG_BOOT_PARAMS_GPA,
    .heartbeat_port = FG_HEARTBEAT_PORT,
    .status_port = FG_STATUS_PORT,
    .reserved = 0,
};

_Static_assert(sizeof(struct fg_image_header) == 64, "image header is 64 bytes");
_Static_assert(sizeof(struct fg_boot_params) == 64, "boot parameters are 64 bytes");
_Static_assert(sizeof(struct fg_record) == 96, "progress record is 96 bytes");

/*
 * Entry, in ring 3 or ring 0, with RSP = 0x10000 as the VMM set it (the call leaves RSP + 8
 * 16-byte aligned, as the ABI wants). ferry_guest_main never returns. The jump after the call is
 * there only as a guard.
 */
__asm__(
    "    .section .text.entry, \"ax\"\n"
    "    .globl _start\n"
    "_start:\n"
    "    call ferry_guest_main\n"
    "1:  jmp 1b\n"
    "    .text\n");

static inline void fg_out32(u16 port, u32 value)
{
    /* The "memory" clobber keeps every store above before the exit the VMM sees. */
    __asm__ volatile("outl %0, %w1" : : "a"(value), "Nd"(port) : "memory");
}

/* Reports a final status forever: HLT between reports in ring 0; in ring 3 every OUT is the exit. */
static void __attribute__((noreturn)) fg_stop(u32 status)
{
    u16 cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (;;) {
        fg_out32(FG_STATUS_PORT, status);
        if ((cs & 3) == 0)
            __asm__ volatile("hlt" : : : "memory");
    }
}

void ferry_guest_main(void)
{
    struct fg_boot_params p;
    struct fg_state s;
    u32 fault = fg_read_params(&p);
    if (fault != 0)
        fg_stop(fault);
    u32 status = fg_boot(&p, &s);
    if (status == FG_FAULT_RECORD)
        fg_stop(status);
    fg_out32(FG_STATUS_PORT, status);
    for (;;) {
        if (fg_done(&p, &s))
            fg_stop(FG_STATUS_DONE);
        fg_step(&p, &s);
        if (s.counter % p.pages_per_heartbeat == 0)
            fg_out32(FG_HEARTBEAT_PORT, (u32)s.counter);
    }
}
