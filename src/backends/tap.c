/* tap.c - tap network backend: /dev/net/tun with IFF_VNET_HDR and probed offloads (see tap.h). */
#include "backends/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define TUN_PATH "/dev/net/tun"

/* Probed offload sets, best first: the VIRTIO_NET_F_* bits each TUN_F_* set stands for. */
#define TAP_OFFLOADS_TSO                                                                           \
	((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) |                         \
	 (1ull << VIRTIO_NET_F_GUEST_TSO4) | (1ull << VIRTIO_NET_F_GUEST_TSO6) |                   \
	 (1ull << VIRTIO_NET_F_GUEST_ECN) | (1ull << VIRTIO_NET_F_HOST_TSO4) |                     \
	 (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN))
#define TAP_OFFLOADS_CSUM ((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM))

unsigned int tap_offload_flags(uint64_t features)
{
	unsigned int fl;

	/*
	 * §5.1.3.1: GUEST_TSO4/6 and GUEST_UFO require GUEST_CSUM, GUEST_ECN
	 * requires a GUEST_TSO; Linux's tun applies the same rule (it ignores
	 * TSO without CSUM and ECN without TSO), so mirror it exactly.
	 */
	if (!(features & (1ull << VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	fl = TUN_F_CSUM;
	if (features & (1ull << VIRTIO_NET_F_GUEST_TSO4))
		fl |= TUN_F_TSO4;
	if (features & (1ull << VIRTIO_NET_F_GUEST_TSO6))
		fl |= TUN_F_TSO6;
	if ((features & (1ull << VIRTIO_NET_F_GUEST_ECN)) && (fl & (TUN_F_TSO4 | TUN_F_TSO6)))
		fl |= TUN_F_TSO_ECN;
	if (features & (1ull << VIRTIO_NET_F_GUEST_UFO))
		fl |= TUN_F_UFO;
	return fl;
}

static ssize_t tap_send(struct net_backend *b, const struct iovec *iov, int iovcnt)
{
	struct tap *t = (struct tap *)b;
	ssize_t n = writev(t->fd, iov, iovcnt);

	return n < 0 ? -errno : n;
}

static ssize_t tap_recv(struct net_backend *b, const struct iovec *iov, int iovcnt)
{
	struct tap *t = (struct tap *)b;
	ssize_t n = readv(t->fd, iov, iovcnt);

	return n < 0 ? -errno : n;
}

static int tap_set_offloads(struct net_backend *b, uint64_t features)
{
	struct tap *t = (struct tap *)b;

	return ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)tap_offload_flags(features)) < 0 ? -errno
	                                                                                   : 0;
}

static void tap_destroy(struct net_backend *b)
{
	tap_close((struct tap *)b);
}

static const struct net_backend_ops tap_ops = {
    .send = tap_send,
    .recv = tap_recv,
    .set_offloads = tap_set_offloads,
    .destroy = tap_destroy,
};

static int tap_open_error(struct err *e, int errnum, const char *name)
{
	switch (errnum) {
	case EPERM:
	case EACCES:
		return err_sys(
		    e, errnum,
		    "tap %s: not allowed (needs root or CAP_NET_ADMIN, or a tap owned by "
		    "this user)",
		    name);
	case EBUSY:
		return err_sys(e, errnum, "tap %s: busy (another process has it open)", name);
	case EINVAL:
		return err_sys(e, errnum,
		               "tap %s: not a tap interface (an interface of another kind has "
		               "this name)",
		               name);
	default:
		return err_sys(e, errnum, "tap %s: TUNSETIFF", name);
	}
}

int tap_open(const char *name, struct tap **out, struct err *e)
{
	unsigned int feats = 0;
	struct ifreq ifr;
	struct tap *t;
	int hdrsz = VNET_HDR_LEN, r;

	*out = NULL;
	if (!name || !name[0] || strlen(name) >= IFNAMSIZ)
		return err_set(e, -EINVAL, "tap name \"%s\": must be 1 to %d characters",
		               name ? name : "", IFNAMSIZ - 1);
	t = calloc(1, sizeof(*t));
	if (!t)
		return err_set(e, -ENOMEM, "tap %s: out of memory", name);
	t->fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		r = -errno;
		if (r == -ENOENT || r == -ENODEV || r == -ENXIO)
			err_sys(e, -r, "tap %s: %s (is the tun module loaded?)", name, TUN_PATH);
		else if (r == -EACCES || r == -EPERM)
			err_sys(e, -r, "tap %s: cannot open %s (needs root or CAP_NET_ADMIN)", name,
			        TUN_PATH);
		else
			err_sys(e, -r, "tap %s: open %s", name, TUN_PATH);
		goto fail;
	}
	if (ioctl(t->fd, TUNGETFEATURES, &feats) == 0 && !(feats & IFF_VNET_HDR)) {
		r = err_set(e, -ENOTSUP, "tap %s: the kernel's tun has no IFF_VNET_HDR", name);
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		r = tap_open_error(e, errno, name);
		goto fail;
	}
	memcpy(t->name, ifr.ifr_name, IFNAMSIZ - 1);
	/* §5.1.6: VERSION_1 always has num_buffers, so both directions use 12 bytes. */
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
		r = err_sys(e, errno, "tap %s: TUNSETVNETHDRSZ %d", t->name, hdrsz);
		goto fail;
	}

	t->nb.ops = &tap_ops;
	t->nb.kind = "tap";
	t->nb.rx_fd = t->fd;
	t->nb.hdr_len = VNET_HDR_LEN;
	/* Probe what the kernel accepts, then start with none until the driver chooses. */
	if (ioctl(t->fd, TUNSETOFFLOAD,
	          (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)) == 0)
		t->nb.offloads = TAP_OFFLOADS_TSO;
	else if (ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM) == 0)
		t->nb.offloads = TAP_OFFLOADS_CSUM;
	if (ioctl(t->fd, TUNSETOFFLOAD, 0ul) < 0) {
		r = err_sys(e, errno, "tap %s: TUNSETOFFLOAD 0", t->name);
		goto fail;
	}
	*out = t;
	return 0;

fail:
	if (t->fd >= 0)
		close(t->fd);
	free(t);
	return r;
}

void tap_close(struct tap *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}
