/* tap.h - tap network backend: a Linux tap interface with virtio-net headers and offloads. */
#ifndef EMBER_BACKENDS_TAP_H
#define EMBER_BACKENDS_TAP_H

/*
 * The tap is opened as IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with a 12-byte
 * vnet header (TUNSETVNETHDRSZ: virtio_net_hdr_v1, §5.1.6), non-blocking.
 * Frames written carry the guest's header, so the kernel does the checksum
 * and segmentation work the guest left (VIRTIO_NET_F_CSUM, HOST_TSO*); frames
 * read carry a header the kernel filled, partially checksummed or GSO only
 * for the offloads enabled with TUNSETOFFLOAD (GUEST_* features).
 *
 * Offloads are negotiated honestly: tap_open() probes TUNSETOFFLOAD with
 * CSUM|TSO4|TSO6|TSO_ECN (then CSUM alone) and advertises in `nb.offloads`
 * only what the kernel accepted; the probe is undone (offloads 0) until the
 * device applies the driver's choice at DRIVER_OK (set_offloads).  UFO is
 * never advertised: since Linux 4.14 tun accepts TUN_F_UFO but silently
 * ignores it, so the probe cannot tell whether it works.
 *
 * ember does not configure the host side (address, up, bridge): that is the
 * user's, as with Firecracker.
 */

#include <net/if.h>

#include "backends/net_backend.h"
#include "util/err.h"

struct tap {
	struct net_backend nb; /* first: the device holds &tap->nb */
	int fd;
	char name[IFNAMSIZ]; /* the interface name the kernel settled on */
};

/*
 * Open tap interface `name` (created if it does not exist, attached if it
 * does; a name with "%d" lets the kernel number it).  Allocates *out.
 * Errors, with a message in `e`: -ENOENT no /dev/net/tun, -EACCES/-EPERM
 * not allowed (root or CAP_NET_ADMIN, or the tap's owner), -EBUSY another
 * process has the tap open, -EINVAL bad name or an interface that is not a
 * tap.
 */
int tap_open(const char *name, struct tap **out, struct err *e);

/* Close the fd (a tap ember created disappears with it) and free t.  NULL is fine. */
void tap_close(struct tap *t);

/* The TUN_F_* mask for negotiated VIRTIO_NET_F_* features (Linux tun semantics). */
unsigned int tap_offload_flags(uint64_t features);

#endif
