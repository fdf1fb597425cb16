/* test_tap.c - unit tests for the tap backend, each run in a private network namespace. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/tap.h"
#include "test.h"

/*
 * Every test that touches the kernel forks; the child moves into a new
 * network namespace (unshare(CLONE_NEWNET)), so taps, packet sockets and
 * frames never reach the host's network, runs its checks and exits with
 * its verdict.  Without the privilege for that, the test is skipped (and
 * says so) rather than run against the host.
 */

#define ETHERTYPE_TEST 0x88b5 /* IEEE 802 local experimental */

static bool skipped;

/* Run fn in a child inside a fresh network namespace; fold its verdict into the current test. */
static void in_netns(void (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0) {
			printf("  # skip %s: unshare(CLONE_NEWNET): %s\n", test_st.cur,
			       strerror(errno));
			fflush(stdout);
			_exit(77);
		}
		if (access("/dev/net/tun", R_OK | W_OK) < 0) {
			printf("  # skip %s: /dev/net/tun: %s\n", test_st.cur, strerror(errno));
			fflush(stdout);
			_exit(77);
		}
		fn();
		fflush(stdout);
		_exit(test_st.cur_failed ? 1 : 0);
	}
	CHECK(pid > 0);
	if (pid <= 0)
		return;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
		skipped = true;
	else
		CHECK_EQ(WEXITSTATUS(status), 0);
}

static int if_up(const char *name)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;

	if (s < 0)
		return -errno;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	r = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	r = r < 0 ? -errno : 0;
	close(s);
	return r;
}

/* An ethtool "get" value (ETHTOOL_GTSO, ETHTOOL_GTXCSUM) of interface name; -errno. */
static int ethtool_get(const char *name, uint32_t cmd)
{
	struct ethtool_value ev = {.cmd = cmd};
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;

	if (s < 0)
		return -errno;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_data = (void *)&ev;
	r = ioctl(s, SIOCETHTOOL, &ifr) < 0 ? -errno : (int)ev.data;
	close(s);
	return r;
}

/* A packet socket bound to the interface; -errno. */
static int packet_socket(const char *name)
{
	struct sockaddr_ll sll = {0};
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));

	if (s < 0)
		return -errno;
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)if_nametoindex(name);
	if (bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		close(s);
		return -errno;
	}
	return s;
}

/* A test frame: broadcast, from 06:00:ac:10:00:02, local ethertype, `tag` in the payload. */
static size_t make_frame(uint8_t *f, uint8_t tag)
{
	static const uint8_t src[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
	size_t i;

	memset(f, 0xff, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETHERTYPE_TEST >> 8;
	f[13] = ETHERTYPE_TEST & 0xff;
	for (i = 14; i < 14 + 100; i++)
		f[i] = (uint8_t)(tag + i);
	return 14 + 100;
}

static bool is_test_frame(const uint8_t *f, size_t n)
{
	return n >= 14 && f[12] == (ETHERTYPE_TEST >> 8) && f[13] == (ETHERTYPE_TEST & 0xff);
}

/* ---- tests that need no kernel ---- */

TEST(offload_flags_mapping)
{
	uint64_t csum = 1ull << VIRTIO_NET_F_GUEST_CSUM, tso4 = 1ull << VIRTIO_NET_F_GUEST_TSO4,
	         tso6 = 1ull << VIRTIO_NET_F_GUEST_TSO6, ecn = 1ull << VIRTIO_NET_F_GUEST_ECN;

	CHECK_EQ(tap_offload_flags(0), 0);
	CHECK_EQ(tap_offload_flags(csum), TUN_F_CSUM);
	/* §5.1.3.1: TSO needs GUEST_CSUM; ECN needs a TSO. */
	CHECK_EQ(tap_offload_flags(tso4 | tso6 | ecn), 0);
	CHECK_EQ(tap_offload_flags(csum | ecn), TUN_F_CSUM);
	CHECK_EQ(tap_offload_flags(csum | tso4), TUN_F_CSUM | TUN_F_TSO4);
	CHECK_EQ(tap_offload_flags(csum | tso4 | tso6 | ecn),
	         TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
	/* Host-side (transmit) offloads need nothing from TUNSETOFFLOAD. */
	CHECK_EQ(tap_offload_flags(1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_HOST_TSO4), 0);
}

TEST(bad_names)
{
	struct err e = {0};
	struct tap *t = (struct tap *)1;

	CHECK_EQ(tap_open("", &t, &e), -EINVAL);
	CHECK(t == NULL);
	CHECK_STR_CONTAINS(e.msg, "1 to 15");
	err_clear(&e);
	CHECK_EQ(tap_open("a-name-that-is-much-too-long", &t, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "a-name-that-is-much-too-long");
	err_clear(&e);
	CHECK_EQ(tap_open(NULL, &t, &e), -EINVAL);
	tap_close(NULL);
}

/* ---- tests in a namespace ---- */

static void do_open_new(void)
{
	struct err e = {0};
	struct tap *t;
	struct ifreq ifr = {0};
	int hdrsz = 0, fl;
	uint8_t buf[64];
	struct iovec iov = {buf, sizeof(buf)};
	char name[IFNAMSIZ];

	CHECK_EQ(tap_open("embertst%d", &t, &e), 0);
	if (!t) {
		printf("  %s\n", e.msg);
		return;
	}
	CHECK_EQ(strcmp(t->name, "embertst0"), 0);
	CHECK(if_nametoindex("embertst0") > 0);
	CHECK_EQ(t->nb.hdr_len, VNET_HDR_LEN);
	CHECK_EQ(t->nb.rx_fd, t->fd);
	CHECK_STR_CONTAINS(t->nb.kind, "tap");
	CHECK_EQ(ioctl(t->fd, TUNGETVNETHDRSZ, &hdrsz), 0);
	CHECK_EQ(hdrsz, 12);
	CHECK_EQ(ioctl(t->fd, TUNGETIFF, &ifr), 0);
	CHECK_EQ(ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN),
	         IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
	fl = fcntl(t->fd, F_GETFL);
	CHECK(fl & O_NONBLOCK);
	CHECK(fcntl(t->fd, F_GETFD) & FD_CLOEXEC);
	/* Linux has had TSO on tap for ages: the probe must find all of it. */
	CHECK(t->nb.offloads & (1ull << VIRTIO_NET_F_GUEST_TSO4));
	CHECK(t->nb.offloads & (1ull << VIRTIO_NET_F_HOST_TSO6));
	CHECK(t->nb.offloads & (1ull << VIRTIO_NET_F_CSUM));
	CHECK(!(t->nb.offloads & (1ull << VIRTIO_NET_F_GUEST_UFO)));
	CHECK(!(t->nb.offloads & (1ull << VIRTIO_NET_F_HOST_UFO)));
	/* Nothing to read yet (interface down): non-blocking. */
	CHECK_EQ(t->nb.ops->recv(&t->nb, &iov, 1), -EAGAIN);
	/* The probe left no offload enabled. */
	CHECK_EQ(ethtool_get(t->name, ETHTOOL_GTSO), 0);
	memcpy(name, t->name, IFNAMSIZ);
	t->nb.ops->destroy(&t->nb);
	/* Not persistent: the interface ember created goes away with the fd. */
	CHECK_EQ(if_nametoindex(name), 0);
}

TEST(open_creates_tap)
{
	in_netns(do_open_new);
}

static void do_offloads(void)
{
	uint64_t all = (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |
	               (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN);
	struct err e = {0};
	struct tap *t;

	CHECK_EQ(tap_open("embertst0", &t, &e), 0);
	if (!t)
		return;
	CHECK_EQ(t->nb.ops->set_offloads(&t->nb, all), 0);
	CHECK_EQ(ethtool_get(t->name, ETHTOOL_GTSO), 1);
	CHECK_EQ(ethtool_get(t->name, ETHTOOL_GTXCSUM), 1);
	CHECK_EQ(t->nb.ops->set_offloads(&t->nb, 1ull << VIRTIO_NET_F_GUEST_CSUM), 0);
	CHECK_EQ(ethtool_get(t->name, ETHTOOL_GTSO), 0);
	CHECK_EQ(ethtool_get(t->name, ETHTOOL_GTXCSUM), 1);
	/* A driver that took TSO without CSUM gets nothing (tun semantics). */
	CHECK_EQ(t->nb.ops->set_offloads(&t->nb, 1ull << VIRTIO_NET_F_GUEST_TSO4), 0);
	CHECK_EQ(ethtool_get(t->name, ETHTOOL_GTSO), 0);
	CHECK_EQ(ethtool_get(t->name, ETHTOOL_GTXCSUM), 0);
	tap_close(t);
}

TEST(offloads_follow_driver)
{
	in_netns(do_offloads);
}

static void do_frames(void)
{
	uint8_t frame[256], buf[2048], hdr[VNET_HDR_LEN] = {0};
	struct err e = {0};
	struct tap *t;
	struct pollfd pfd;
	size_t flen;
	ssize_t n;
	int ps, i;
	bool seen = false;

	CHECK_EQ(tap_open("embertst0", &t, &e), 0);
	if (!t)
		return;
	CHECK_EQ(if_up(t->name), 0);
	ps = packet_socket(t->name);
	CHECK(ps >= 0);
	if (ps < 0)
		goto out;

	/* Guest -> host: header + frame written to the tap arrive on the interface. */
	flen = make_frame(frame, 1);
	{
		struct iovec iov[3] = {{hdr, 5}, {hdr + 5, 7}, {frame, flen}};

		CHECK_EQ(t->nb.ops->send(&t->nb, iov, 3), (ssize_t)(VNET_HDR_LEN + flen));
	}
	pfd = (struct pollfd){.fd = ps, .events = POLLIN};
	for (i = 0; i < 50 && !seen && poll(&pfd, 1, 100) > 0; i++) {
		n = recv(ps, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0 && is_test_frame(buf, (size_t)n)) {
			seen = true;
			CHECK_EQ(n, (ssize_t)flen);
			CHECK_EQ(memcmp(buf, frame, flen), 0);
		}
	}
	CHECK(seen);

	/* Host -> guest: a frame sent on the interface is read from the tap behind a header. */
	{
		struct sockaddr_ll to = {.sll_family = AF_PACKET,
		                         .sll_ifindex = (int)if_nametoindex(t->name),
		                         .sll_halen = 6};
		struct iovec iov[2] = {{hdr, VNET_HDR_LEN}, {buf, sizeof(buf)}};

		memset(to.sll_addr, 0xff, 6);
		flen = make_frame(frame, 2);
		CHECK_EQ(sendto(ps, frame, flen, 0, (struct sockaddr *)&to, sizeof(to)),
		         (ssize_t)flen);
		seen = false;
		pfd = (struct pollfd){.fd = t->fd, .events = POLLIN};
		for (i = 0; i < 50 && !seen && poll(&pfd, 1, 100) > 0; i++) {
			n = t->nb.ops->recv(&t->nb, iov, 2);
			if (n > VNET_HDR_LEN && is_test_frame(buf, (size_t)n - VNET_HDR_LEN)) {
				struct vnet_hdr_v1 h;

				seen = true;
				memcpy(&h, hdr, sizeof(h));
				CHECK_EQ(n, (ssize_t)(VNET_HDR_LEN + flen));
				CHECK_EQ(memcmp(buf, frame, flen), 0);
				CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
				CHECK_EQ(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
			}
		}
		CHECK(seen);
	}
	close(ps);
out:
	tap_close(t);
}

TEST(frames_both_ways)
{
	in_netns(do_frames);
}

/* An IPv4/TCP frame of `payload` bytes; returns the frame length. */
static size_t make_tcp_frame(uint8_t *f, size_t payload)
{
	size_t ip_len = 20 + 20 + payload;

	memset(f, 0, 14 + ip_len);
	memset(f, 0xff, 6);
	f[6] = 0x06;
	f[12] = 0x08; /* IPv4 */
	f[14] = 0x45;
	f[16] = (uint8_t)(ip_len >> 8);
	f[17] = (uint8_t)ip_len;
	f[22] = 64;
	f[23] = 6; /* TCP */
	f[26] = 10, f[29] = 15;
	f[30] = 10, f[33] = 2;
	f[34] = 0x30, f[35] = 0x39; /* sport 12345 */
	f[36] = 0x00, f[37] = 0x50; /* dport 80 */
	f[46] = 0x50;               /* data offset 5 */
	f[47] = 0x18;               /* PSH|ACK */
	f[48] = 0xff;
	return 14 + ip_len;
}

static void do_gso_write(void)
{
	static uint8_t frame[4096];
	struct vnet_hdr_v1 h = {0};
	struct err e = {0};
	struct tap *t;
	size_t flen = make_tcp_frame(frame, 3000);
	struct iovec iov[2] = {{&h, VNET_HDR_LEN}, {frame, flen}};

	CHECK_EQ(tap_open("embertst0", &t, &e), 0);
	if (!t)
		return;
	CHECK_EQ(if_up(t->name), 0);
	/* HOST_TSO4: a 3000-byte TCP payload in one write, the kernel segments it. */
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.hdr_len = 14 + 20 + 20;
	h.gso_size = 1000;
	h.csum_start = 14 + 20;
	h.csum_offset = 16;
	CHECK_EQ(t->nb.ops->send(&t->nb, iov, 2), (ssize_t)(VNET_HDR_LEN + flen));
	/* A header that contradicts the packet (csum beyond it) is refused by tun: -EINVAL. */
	h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	h.csum_start = 60000;
	CHECK_EQ(t->nb.ops->send(&t->nb, iov, 2), -EINVAL);
	tap_close(t);
}

TEST(gso_write_and_bad_header)
{
	in_netns(do_gso_write);
}

static void do_errors(void)
{
	struct err e = {0};
	struct tap *t, *t2;
	int status;
	pid_t pid;

	/* Another interface kind under that name. */
	CHECK_EQ(tap_open("lo", &t2, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "not a tap");
	err_clear(&e);

	/* Busy: a single-queue tap takes one opener. */
	CHECK_EQ(tap_open("embertst0", &t, &e), 0);
	if (!t)
		return;
	CHECK_EQ(tap_open("embertst0", &t2, &e), -EBUSY);
	CHECK(t2 == NULL);
	CHECK_STR_CONTAINS(e.msg, "busy");
	err_clear(&e);

	/* Unprivileged: an ordinary user cannot open /dev/net/tun (or create a tap). */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int r;

		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(3);
		r = tap_open("embertst1", &t2, &e);
		if (r != -EACCES && r != -EPERM)
			_exit(1);
		_exit(strstr(e.msg, "CAP_NET_ADMIN") ? 0 : 2);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tap_close(t);
}

TEST(open_errors)
{
	in_netns(do_errors);
}

int main(void)
{
	RUN(offload_flags_mapping);
	RUN(bad_names);
	RUN(open_creates_tap);
	RUN(offloads_follow_driver);
	RUN(frames_both_ways);
	RUN(gso_write_and_bad_header);
	RUN(open_errors);
	if (skipped)
		printf(
		    "# some tests were skipped: no privilege for network namespaces or no tun\n");
	return test_summary();
}
