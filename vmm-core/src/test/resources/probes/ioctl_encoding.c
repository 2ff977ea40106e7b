/*
 * ioctl numbers as the kernel's macros (asm-generic/ioctl.h) encode them, for comparison with
 * dev.ferry.core.sys.Ioctl in HeaderProbeTest. Sizes are given as char arrays so that no
 * KVM or VFIO header is needed; the named ones are real requests with their struct sizes.
 */
#include <linux/ioctl.h>

#include "ferry_probe.h"

int main(void) {
    /* the encoding's parameters */
    FERRY_PROBE(_IOC_NONE);
    FERRY_PROBE(_IOC_WRITE);
    FERRY_PROBE(_IOC_READ);
    FERRY_PROBE(_IOC_NRBITS);
    FERRY_PROBE(_IOC_TYPEBITS);
    FERRY_PROBE(_IOC_SIZEBITS);
    FERRY_PROBE(_IOC_DIRBITS);

    /* real requests (linux/kvm.h, linux/vfio.h) */
    FERRY_PROBE_AS("KVM_GET_API_VERSION", _IO(0xAE, 0x00));
    FERRY_PROBE_AS("KVM_CREATE_VM", _IO(0xAE, 0x01));
    FERRY_PROBE_AS("KVM_RUN", _IO(0xAE, 0x80));
    FERRY_PROBE_AS("KVM_GET_REGS", _IOR(0xAE, 0x81, char[144]));              /* struct kvm_regs */
    FERRY_PROBE_AS("KVM_SET_USER_MEMORY_REGION", _IOW(0xAE, 0x46, char[32])); /* struct kvm_userspace_memory_region */
    FERRY_PROBE_AS("KVM_GET_SUPPORTED_CPUID", _IOWR(0xAE, 0x05, char[8]));     /* struct kvm_cpuid2 */
    FERRY_PROBE_AS("VFIO_GET_API_VERSION", _IO(';', 100));

    /* every direction over the edges of each field */
    FERRY_PROBE_AS("_IO(0x00,0x00)", _IO(0x00, 0x00));
    FERRY_PROBE_AS("_IO(0xff,0xff)", _IO(0xff, 0xff));
    FERRY_PROBE_AS("_IOR(0xAE,0x00,int)", _IOR(0xAE, 0x00, int));
    FERRY_PROBE_AS("_IOW(0xAE,0x01,long)", _IOW(0xAE, 0x01, long));
    FERRY_PROBE_AS("_IOWR(0xAE,0x02,short)", _IOWR(0xAE, 0x02, short));
    FERRY_PROBE_AS("_IOR(0xff,0xff,char[1])", _IOR(0xff, 0xff, char[1]));
    FERRY_PROBE_AS("_IOW(0x3b,0x7f,char[256])", _IOW(0x3b, 0x7f, char[256]));
    FERRY_PROBE_AS("_IOWR(0x12,0x34,char[4096])", _IOWR(0x12, 0x34, char[4096]));
    FERRY_PROBE_AS("_IOR(0x80,0x81,char[16383])", _IOR(0x80, 0x81, char[16383]));
    FERRY_PROBE_AS("_IOWR(0xff,0xff,char[16383])", _IOWR(0xff, 0xff, char[16383]));
    return 0;
}
