/* vm_uffd.c - the Uffd memory backend of a restore: guest RAM served by a page-fault handler. */
#include "vmm/vm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/*
 * Firecracker's handshake (docs/snapshotting/handling-page-faults-on-snapshot-resume.md):
 * ember maps guest RAM anonymous, registers every region with a userfaultfd for missing-page
 * faults, connects to the handler's Unix socket and sends, in one message, a JSON array with
 * one object per region and the userfaultfd as SCM_RIGHTS.  The handler resolves each fault
 * (UFFDIO_COPY from the memory file, ...).  ember keeps its own copy of the userfaultfd and
 * the connection open for the VM's life, as Firecracker does.
 */

#define UFFD_ERR          "Error creating guest memory from uffd: "
#define UFFD_TAKE_TIMEOUT 10000 /* ms the handler has to read the handshake */

static int new_uffd(struct err *e)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	int flags = O_CLOEXEC | O_NONBLOCK, fd, dev, sys_errno;

	/* Not UFFD_USER_MODE_ONLY: KVM's accesses to guest RAM are the kernel's. */
	fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd < 0) {
		/* Where vm.unprivileged_userfaultfd forbids the call, /dev/userfaultfd (Linux 6.1)
		 * gives one to whoever may open it. */
		sys_errno = errno;
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return err_sys(e, sys_errno,
			               UFFD_ERR "Failed to UFFD object: userfaultfd() is refused "
			                        "and /dev/userfaultfd cannot be opened (%s)",
			               strerror(errno));
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		sys_errno = errno;
		close(dev);
		if (fd < 0)
			return err_sys(e, sys_errno,
			               UFFD_ERR
			               "Failed to UFFD object: /dev/userfaultfd refused a new "
			               "userfaultfd");
	}
	/* Firecracker requires EVENT_REMOVE, which handlers written for it expect. */
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		sys_errno = errno;
		close(fd);
		return err_sys(e, sys_errno,
		               UFFD_ERR "Failed to UFFD object: UFFDIO_API with "
		                        "UFFD_FEATURE_EVENT_REMOVE");
	}
	return fd;
}

static int register_region(int uffd, void *p, uint64_t size, struct err *e)
{
	struct uffdio_register reg = {
	    .range = {.start = (uintptr_t)p, .len = size},
	    .mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return err_sys(e, errno,
		               UFFD_ERR "Failed to register memory address range with the "
		                        "userfaultfd object");
	return 0;
}

/* One GuestRegionUffdMapping object, Firecracker's field names and order (page_size_kib is
 * Firecracker's deprecated name for page_size, in bytes too). */
static int mapping_json(char *buf, size_t size, const void *base, uint64_t len, uint64_t off,
                        uint64_t page)
{
	return snprintf(buf, size,
	                "{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu,"
	                "\"page_size\":%llu,\"page_size_kib\":%llu}",
	                (unsigned long long)(uintptr_t)base, (unsigned long long)len,
	                (unsigned long long)off, (unsigned long long)page,
	                (unsigned long long)page);
}

/* The handshake's JSON array: one mapping per RAM region, at its offset in the memory file. */
static int mappings_json(struct vm *vm, char *buf, size_t size)
{
	uint64_t page = vm->cfg.huge_pages == VM_HUGE_PAGES_2M ? 2u << 20 : 4096;
	int n = snprintf(buf, size, "[");

	n += mapping_json(buf + n, size - (size_t)n, vm->ram_low, vm->ml.low_size, 0, page);
	if (vm->ml.high_size) {
		n += snprintf(buf + n, size - (size_t)n, ",");
		n += mapping_json(buf + n, size - (size_t)n, vm->ram_high, vm->ml.high_size,
		                  vm->ml.low_size, page);
	}
	n += snprintf(buf + n, size - (size_t)n, "]");
	return n;
}

static int connect_handler(const char *path, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(e, ENAMETOOLONG,
		               UFFD_ERR "Failed to connect to UDS Unix stream: the path %s is "
		                        "longer than a Unix socket's %zu bytes",
		               path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(e, errno, UFFD_ERR "Failed to connect to UDS Unix stream");
	do
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = err_sys(e, errno,
		            UFFD_ERR "Failed to connect to UDS Unix stream: the page-fault "
		                     "handler's socket %s",
		            path);
		close(fd);
		return r;
	}
	return fd;
}

static int send_handshake(int sock, const char *json, size_t len, int uffd, struct err *e)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)json, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = ctl.buf,
	                     .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c;
	ssize_t n;

	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_sys(e, errno,
		               UFFD_ERR "Failed to sends file descriptor: the page-fault handler "
		                        "closed the connection");
	if ((size_t)n != len)
		return err_set(e, EIO,
		               UFFD_ERR "Failed to sends file descriptor: %zd of %zu bytes sent", n,
		               len);
	return 0;
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * ember's addition to the protocol, which has no answer: wait until the handler has read the
 * handshake (nothing left unread: SIOCOUTQ, unix(7)), so that a handler which closes the
 * connection without taking the userfaultfd fails the load instead of freezing the guest at
 * its first fault.  A peer that closes with the message unread leaves ECONNRESET.
 */
static int wait_taken(int sock, const char *path, struct err *e)
{
	long end = now_ms() + UFFD_TAKE_TIMEOUT;

	for (;;) {
		struct pollfd p = {.fd = sock, .events = POLLRDHUP};
		int unread = 0, soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (getsockopt(sock, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
			return err_set(e, EPIPE,
			               UFFD_ERR
			               "the page-fault handler at %s closed the connection "
			               "without reading the userfaultfd (%s)",
			               path, strerror(soerr));
		if (ioctl(sock, SIOCOUTQ, &unread) < 0)
			return err_sys(e, errno, UFFD_ERR "SIOCOUTQ on the handler's connection");
		if (unread == 0)
			return 0;
		if (now_ms() >= end)
			return err_set(e, ETIMEDOUT,
			               UFFD_ERR "the page-fault handler at %s did not read the "
			                        "userfaultfd within %d s",
			               path, UFFD_TAKE_TIMEOUT / 1000);
		if (poll(&p, 1, 10) < 0 && errno != EINTR)
			return err_sys(e, errno, UFFD_ERR "poll on the handler's connection");
	}
}

/*
 * The handler closed its end of the connection: it has ended (Firecracker's handlers keep the
 * connection while they serve), and the guest's next missing page would never come.  A thread
 * of its own waits for that, because every other thread of ember may be the one waiting on a
 * fault (the VMM thread reads guest RAM for devices and snapshots).  It stops the VM and
 * closes ember's userfaultfd: when that is the last reference, every thread waiting on a
 * fault returns (the pages read as zeroes) and the VM can stop.
 */
static void *watch_handler(void *opaque)
{
	struct vm *vm = opaque;
	struct pollfd p = {.fd = vm->uffd_sock, .events = POLLRDHUP};
	int fd;

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	if (__atomic_load_n(&vm->uffd_closing, __ATOMIC_ACQUIRE))
		return NULL; /* vm_undo_uffd shut the connection down */
	log_error("the page-fault handler at %s closed its connection: the guest's memory is no "
	          "longer served",
	          vm->uffd_path);
	vm_request_stop(vm, VM_STOP_FATAL,
	                "the page-fault handler at %s closed its connection: the guest's memory "
	                "is no longer served",
	                vm->uffd_path);
	__atomic_store_n(&vm->uffd_lost, true, __ATOMIC_RELEASE);
	fd = __atomic_exchange_n(&vm->uffd, -1, __ATOMIC_ACQ_REL);
	if (fd >= 0)
		close(fd);
	return NULL;
}

bool vm_uffd_lost(struct vm *vm)
{
	return __atomic_load_n(&vm->uffd_lost, __ATOMIC_ACQUIRE);
}

int vm_step_uffd(struct vm *vm, struct err *e)
{
	const char *path = vm->cfg.restore ? vm->cfg.restore->uffd_path : NULL;
	char json[512];
	int r, n;

	vm->uffd = vm->uffd_sock = -1;
	if (!path)
		return 0;
	vm->uffd = new_uffd(e);
	if (vm->uffd < 0)
		return vm->uffd;
	r = register_region(vm->uffd, vm->ram_low, vm->ml.low_size, e);
	if (r == 0 && vm->ml.high_size)
		r = register_region(vm->uffd, vm->ram_high, vm->ml.high_size, e);
	if (r < 0)
		goto fail;
	n = mappings_json(vm, json, sizeof(json));
	if (n <= 0 || (size_t)n >= sizeof(json)) {
		r = err_set(e, EOVERFLOW,
		            "the memory layout does not fit the page-fault handler's "
		            "handshake (%zu bytes)",
		            sizeof(json));
		goto fail;
	}
	vm->uffd_sock = connect_handler(path, e);
	if (vm->uffd_sock < 0) {
		r = vm->uffd_sock;
		goto fail;
	}
	snprintf(vm->uffd_path, sizeof(vm->uffd_path), "%s", path); /* it fits: connected */
	r = send_handshake(vm->uffd_sock, json, (size_t)n, vm->uffd, e);
	if (r == 0)
		r = wait_taken(vm->uffd_sock, path, e);
	if (r < 0)
		goto fail;
	r = -pthread_create(&vm->uffd_thread, NULL, watch_handler, vm);
	if (r < 0) {
		err_sys(e, -r, "cannot start the thread that watches the page-fault handler");
		goto fail;
	}
	vm->uffd_watching = true;
	log_info("snapshot: guest memory served by the page-fault handler at %s (%s)", path, json);
	return 0;
fail:
	if (vm->uffd_sock >= 0)
		close(vm->uffd_sock);
	close(vm->uffd);
	vm->uffd = vm->uffd_sock = -1;
	return r;
}

void vm_undo_uffd(struct vm *vm)
{
	int fd;

	if (vm->uffd_watching) {
		/* Our own shutdown wakes the watcher's poll; the flag says it is not the handler.
		 */
		__atomic_store_n(&vm->uffd_closing, true, __ATOMIC_RELEASE);
		shutdown(vm->uffd_sock, SHUT_RDWR);
		pthread_join(vm->uffd_thread, NULL);
		vm->uffd_watching = false;
	}
	if (vm->uffd_sock >= 0)
		close(vm->uffd_sock);
	fd = __atomic_exchange_n(&vm->uffd, -1, __ATOMIC_ACQ_REL);
	if (fd >= 0)
		close(fd);
	vm->uffd_sock = -1;
}
