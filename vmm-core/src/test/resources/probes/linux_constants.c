/*
 * Prints the kernel and libc constants that dev.ferry.core.sys.Linux and Errno mirror, and the
 * layouts of struct pollfd, struct epoll_event and struct itimerspec, as the host's headers
 * define them. HeaderProbeTest maps each Java
 * constant to one of these keys; a key printed here must be checked there and vice versa.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <linux/mman.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <fcntl.h>
#include <errno.h>
#include <unistd.h>
#include <linux/memfd.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "ferry_probe.h"

int main(void) {
    /* linux/memfd.h */
    FERRY_PROBE(MFD_CLOEXEC);
    FERRY_PROBE(MFD_ALLOW_SEALING);
    FERRY_PROBE(MFD_HUGETLB);
    FERRY_PROBE(MFD_HUGE_2MB);

    /* sys/mman.h */
    FERRY_PROBE(PROT_NONE);
    FERRY_PROBE(PROT_READ);
    FERRY_PROBE(PROT_WRITE);
    FERRY_PROBE(MAP_SHARED);
    FERRY_PROBE(MAP_PRIVATE);
    FERRY_PROBE(MAP_ANONYMOUS);
    FERRY_PROBE(MAP_NORESERVE);
    FERRY_PROBE(MAP_POPULATE);
    FERRY_PROBE(MAP_HUGETLB);
    FERRY_PROBE_AS("MAP_FAILED", (intptr_t)MAP_FAILED);
    FERRY_PROBE(MADV_DONTNEED);
    FERRY_PROBE(MADV_REMOVE);
    FERRY_PROBE(MADV_POPULATE_WRITE);
    FERRY_PROBE(SEEK_DATA);
    FERRY_PROBE(SEEK_HOLE);

    /* sys/eventfd.h */
    FERRY_PROBE(EFD_CLOEXEC);
    FERRY_PROBE(EFD_NONBLOCK);
    FERRY_PROBE(EFD_SEMAPHORE);

    /* poll.h: the events and struct pollfd { int fd; short events; short revents; } */
    FERRY_PROBE(POLLIN);
    FERRY_PROBE(POLLOUT);
    FERRY_PROBE(POLLERR);
    FERRY_PROBE(POLLHUP);
    FERRY_PROBE(POLLNVAL);
    FERRY_SIZEOF("sizeof(struct_pollfd)", struct pollfd);
    FERRY_OFFSETOF("offsetof(struct_pollfd,fd)", struct pollfd, fd);
    FERRY_OFFSETOF("offsetof(struct_pollfd,events)", struct pollfd, events);
    FERRY_OFFSETOF("offsetof(struct_pollfd,revents)", struct pollfd, revents);
    FERRY_SIZEOF("sizeof(pollfd.fd)", ((struct pollfd *)0)->fd);
    FERRY_SIZEOF("sizeof(pollfd.events)", ((struct pollfd *)0)->events);
    FERRY_SIZEOF("sizeof(pollfd.revents)", ((struct pollfd *)0)->revents);

    /* sys/epoll.h: struct epoll_event { uint32_t events; epoll_data_t data; }, packed on x86-64 */
    FERRY_PROBE(EPOLL_CLOEXEC);
    FERRY_PROBE(EPOLL_CTL_ADD);
    FERRY_PROBE(EPOLL_CTL_DEL);
    FERRY_PROBE(EPOLL_CTL_MOD);
    FERRY_PROBE(EPOLLIN);
    FERRY_PROBE(EPOLLOUT);
    FERRY_PROBE(EPOLLERR);
    FERRY_PROBE(EPOLLHUP);
    FERRY_PROBE(EPOLLRDHUP);
    FERRY_PROBE(EPOLLONESHOT);
    FERRY_PROBE(EPOLLET);
    FERRY_SIZEOF("sizeof(struct_epoll_event)", struct epoll_event);
    FERRY_OFFSETOF("offsetof(struct_epoll_event,events)", struct epoll_event, events);
    FERRY_OFFSETOF("offsetof(struct_epoll_event,data)", struct epoll_event, data);
    FERRY_SIZEOF("sizeof(epoll_event.events)", ((struct epoll_event *)0)->events);
    FERRY_SIZEOF("sizeof(epoll_event.data)", ((struct epoll_event *)0)->data);

    /* time.h, sys/timerfd.h: struct itimerspec { struct timespec it_interval, it_value; },
       struct timespec { time_t tv_sec; long tv_nsec; } */
    FERRY_PROBE(CLOCK_MONOTONIC);
    FERRY_PROBE(TFD_NONBLOCK);
    FERRY_PROBE(TFD_CLOEXEC);
    FERRY_SIZEOF("sizeof(struct_itimerspec)", struct itimerspec);
    FERRY_OFFSETOF("offsetof(struct_itimerspec,it_interval)", struct itimerspec, it_interval);
    FERRY_OFFSETOF("offsetof(struct_itimerspec,it_value)", struct itimerspec, it_value);
    FERRY_OFFSETOF("offsetof(struct_timespec,tv_sec)", struct timespec, tv_sec);
    FERRY_OFFSETOF("offsetof(struct_timespec,tv_nsec)", struct timespec, tv_nsec);
    FERRY_SIZEOF("sizeof(struct_timespec)", struct timespec);
    FERRY_SIZEOF("sizeof(timespec.tv_sec)", ((struct timespec *)0)->tv_sec);
    FERRY_SIZEOF("sizeof(timespec.tv_nsec)", ((struct timespec *)0)->tv_nsec);

    /* fcntl.h */
    FERRY_PROBE(O_RDONLY);
    FERRY_PROBE(O_WRONLY);
    FERRY_PROBE(O_RDWR);
    FERRY_PROBE(O_NONBLOCK);
    FERRY_PROBE(O_CLOEXEC);
    FERRY_PROBE(F_GETFD);
    FERRY_PROBE(F_GETFL);
    FERRY_PROBE(F_SETFL);

    /* unistd.h: the page size of this host (Ferry assumes 4 KiB pages) */
    FERRY_PROBE_AS("PAGE_SIZE", sysconf(_SC_PAGESIZE));

    /* errno.h */
    FERRY_PROBE(EPERM);
    FERRY_PROBE(ENOENT);
    FERRY_PROBE(EINTR);
    FERRY_PROBE(EIO);
    FERRY_PROBE(ESRCH);
    FERRY_PROBE(ENXIO);
    FERRY_PROBE(E2BIG);
    FERRY_PROBE(EBADF);
    FERRY_PROBE(EAGAIN);
    FERRY_PROBE(ENOMEM);
    FERRY_PROBE(EACCES);
    FERRY_PROBE(EFAULT);
    FERRY_PROBE(EBUSY);
    FERRY_PROBE(EEXIST);
    FERRY_PROBE(ENODEV);
    FERRY_PROBE(EINVAL);
    FERRY_PROBE(ENOTTY);
    FERRY_PROBE(ENOSPC);
    FERRY_PROBE(ERANGE);
    FERRY_PROBE(ENOSYS);
    FERRY_PROBE(ENOMSG);
    FERRY_PROBE(EOPNOTSUPP);
    return 0;
}
