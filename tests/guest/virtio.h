/* virtio.h - the test guest's ring-3 virtio drivers: virtio-pci, virtio-mmio, split rings. */
#ifndef EMBER_GUEST_VIRTIO_H
#define EMBER_GUEST_VIRTIO_H

/*
 * A transport-neutral driver core (virtio 1.2): device discovery on both
 * transports, the status sequence (§3.1.1), feature negotiation, split
 * virtqueues (§2.7) in guest memory with direct and indirect descriptors,
 * event-index or flag based notification suppression, and three ways of
 * waiting for used buffers:
 *
 *   poll   spin on used->idx (TSC-bounded); no interrupt is configured
 *   msix   virtio-pci: one MSI-X vector per queue plus one for config changes
 *   intx   virtio-pci: MSI-X off, INTA through its IOAPIC pin (level), ISR read
 *   line   virtio-mmio: the slot's GSI through its IOAPIC pin (edge),
 *          InterruptStatus / InterruptACK
 *
 * Everything runs in ring 3; interrupts are counted by the ring-0 stubs
 * (irq_count[]), so an interrupt wait is "watch a counter, then look at the
 * ring".  Nothing per request needs ring 0.
 *
 * Which device a test expects and how to drive it comes from the command
 * line (the integration harness puts it there):
 *
 *   test.virtio_<dev>=pci|mmio   <dev> is blk, net, rng, vsock, balloon: the device is
 *                                expected on that transport (missing = failure);
 *                                without the word the test skips
 *   test.virtio_mode=poll|msix|intx|irq
 *                                irq = msix on pci, line on mmio (default irq)
 *   test.virtio_features=L       optional ring features the driver accepts when
 *                                offered: a comma list of event_idx, indirect,
 *                                or none / all (default all)
 *
 * Memory for rings and buffers comes from dma_alloc(), a bump allocator over
 * the RAM above DMA_BASE (identity-mapped, user-accessible, so a guest
 * physical address is the pointer).
 */

#include "pci.h"

/* ---- constants (virtio 1.2) ---- */

#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device ID (§4.1.2) */

#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK   19
#define VIRTIO_ID_MEM     24

#define VIRTIO_F_INDIRECT_DESC   28
#define VIRTIO_F_EVENT_IDX       29
#define VIRTIO_F_VERSION_1       32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED     34
#define BIT64(n)                 (1ull << (n))

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER      0x02
#define VIRTIO_STATUS_DRIVER_OK   0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED      0x80

/* virtio-pci capabilities (§4.1.4): vendor-specific, cfg_type 1..5. */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR    3
#define VIRTIO_PCI_CAP_DEVICE 4
#define VIRTIO_PCI_CAP_PCI    5
#define PCI_CAP_ID_VNDR       0x09

/* struct virtio_pci_common_cfg (§4.1.4.3). */
#define VPCI_DFSELECT    0x00
#define VPCI_DF          0x04
#define VPCI_GFSELECT    0x08
#define VPCI_GF          0x0c
#define VPCI_MSIX        0x10
#define VPCI_NUMQ        0x12
#define VPCI_STATUS      0x14
#define VPCI_CFGGEN      0x15
#define VPCI_Q_SELECT    0x16
#define VPCI_Q_SIZE      0x18
#define VPCI_Q_MSIX      0x1a
#define VPCI_Q_ENABLE    0x1c
#define VPCI_Q_NOFF      0x1e
#define VPCI_Q_DESC      0x20
#define VPCI_Q_AVAIL     0x28
#define VPCI_Q_USED      0x30
#define VIRTIO_NO_VECTOR 0xffff

/* virtio-mmio v2 registers (§4.2.2). */
#define VMMIO_MAGIC       0x000
#define VMMIO_VERSION     0x004
#define VMMIO_DEVICE_ID   0x008
#define VMMIO_VENDOR_ID   0x00c
#define VMMIO_DF          0x010
#define VMMIO_DFSEL       0x014
#define VMMIO_GF          0x020
#define VMMIO_GFSEL       0x024
#define VMMIO_Q_SEL       0x030
#define VMMIO_Q_NUM_MAX   0x034
#define VMMIO_Q_NUM       0x038
#define VMMIO_Q_READY     0x044
#define VMMIO_Q_NOTIFY    0x050
#define VMMIO_INT_STATUS  0x060
#define VMMIO_INT_ACK     0x064
#define VMMIO_STATUS      0x070
#define VMMIO_Q_DESC_LO   0x080
#define VMMIO_Q_DESC_HI   0x084
#define VMMIO_Q_AVAIL_LO  0x090
#define VMMIO_Q_AVAIL_HI  0x094
#define VMMIO_Q_USED_LO   0x0a0
#define VMMIO_Q_USED_HI   0x0a4
#define VMMIO_CFG_GEN     0x0fc
#define VMMIO_CONFIG      0x100
#define VMMIO_MAGIC_VALUE 0x74726976    /* "virt" */
#define VMMIO_SLOT_BASE   0xf0000000ull /* ember's PLATFORM_MMIO_GPA */

#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2

/* Split virtqueue (§2.7). */
#define VRING_DESC_F_NEXT          1
#define VRING_DESC_F_WRITE         2
#define VRING_DESC_F_INDIRECT      4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY     1

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct vring_used_elem {
	u32 id;
	u32 len;
};

/* ---- memory for rings and buffers ---- */

#define DMA_BASE (16 * MiB)

/* `size` zeroed bytes aligned to `align` (a power of two); NULL (and a diagnostic) if RAM ran out.
 */
void *dma_alloc(u64 size, u64 align);
/* Where the next allocation would start; dma_release() frees everything allocated since. */
u64 dma_mark(void);
void dma_release(u64 mark);

static inline u64 pa(const volatile void *p)
{
	return (u64)(uintptr_t)p;
}

/* ---- options from the command line ---- */

enum virtio_transport { VT_PCI, VT_MMIO };
enum virtio_mode { VM_POLL, VM_MSIX, VM_INTX, VM_LINE };

struct virtio_opts {
	enum virtio_transport transport;
	enum virtio_mode mode;
	bool event_idx, indirect; /* accept these when offered */
};

const char *virtio_mode_name(enum virtio_mode m);
const char *virtio_transport_name(enum virtio_transport t);

/* ---- devices and queues ---- */

#define VIRTIO_MAX_QUEUES 4
#define VIRTIO_MAX_DEVS   16
#define VQ_MAX_SIZE       256
#define VEC_VIRTIO_BASE   0x90 /* LAPIC vectors 0x90-0xef: 8 per open device */
#define VEC_VIRTIO_SLOTS  12
#define VQ_IRQ_GRACE_MS   2000 /* a used buffer's interrupt must follow within this */

struct virtio_dev;

struct vq {
	struct virtio_dev *dev;
	unsigned int index;
	u16 size;
	volatile struct vring_desc *desc;
	volatile u16 *avail; /* flags, idx, ring[size], used_event */
	volatile u16 *used;  /* flags, idx, then ring elements (used_ring()), avail_event */
	u64 notify;          /* where a kick is written */
	bool event_idx, indirect;
	bool want_irq;                    /* ask the device for used-buffer notifications */
	u8 vector;                        /* LAPIC vector that signals this queue (0: none) */
	unsigned int indirect_max;        /* descriptors per indirect table */
	volatile struct vring_desc *itab; /* size tables of indirect_max entries, by head */

	u16 avail_idx;  /* next avail index (published in avail->idx) */
	u16 kicked_idx; /* avail index at the last kick decision */
	u16 last_used;  /* next used index to consume */
	u16 free_head, nfree;
	u16 next[VQ_MAX_SIZE];      /* free list / chain links (shadow of desc[].next) */
	u16 chain_len[VQ_MAX_SIZE]; /* descriptors held by an in-flight head, 0 if free */

	/* counters for the tests' diagnostics */
	u32 kicks, kicks_skipped, added, completed, errors;
	u32 lost_irqs; /* waits where the buffer came but its interrupt did not (vq_wait) */
};

struct virtio_dev {
	enum virtio_transport transport;
	u32 type;
	char name[32];
	struct virtio_opts opts;
	bool open; /* set by virtio_start, cleared by virtio_close */

	/* virtio-pci */
	u16 bdf;
	u16 command; /* COMMAND as found */
	u64 common, notify_base, isr, devcfg;
	u32 notify_mult, devcfg_len;
	unsigned int msix_cap, msix_size;
	u64 msix_table;
	u8 intx_pin, intx_line;

	/* virtio-mmio */
	u64 base;
	unsigned int gsi;

	u64 offered, features;
	u16 num_queues; /* pci: num_queues; mmio: 0 (unknown) */
	int slot;       /* vector block, -1 if none */
	u8 vec_base;    /* LAPIC vector of MSI-X entry 0 (config) / the line */
	struct vq *vq[VIRTIO_MAX_QUEUES];
};

/* ---- discovery ---- */

/* Where a device sits, as discovery reports it. */
struct virtio_loc {
	enum virtio_transport transport;
	u32 type;
	u16 bdf;  /* pci */
	u64 base; /* mmio */
	unsigned int gsi;
};

/* virtio-mmio slots announced by `virtio_mmio.device=<size>@<base>:<irq>` words. */
unsigned int virtio_mmio_slots(u64 *base, unsigned int *gsi, unsigned int max);
/* Every virtio device on transport t (pci: bus scan; mmio: the command line's slots). */
unsigned int virtio_scan(enum virtio_transport t, struct virtio_loc *out, unsigned int max);
const char *virtio_type_name(u32 type);

/*
 * Begin a test of device `type`: read test.virtio_<key> and the options,
 * find the nth such device on that transport and fill *d (not yet started).
 * Returns false when the test should end: not announced (skip), or missing
 * or unusable (a failure).
 */
bool virtio_open(struct virtio_dev *d, u32 type, const char *key, unsigned int nth);
/* The same without the announcement: nth device of `type` on `t`, with options `o`. */
bool virtio_find(struct virtio_dev *d, u32 type, enum virtio_transport t, unsigned int nth,
                 const struct virtio_opts *o);
/*
 * The virtio-pci function at `bdf` wherever it sits (bus 0, or behind a root
 * port it was hot-plugged into), with options `o`: its type from the device
 * ID, BARs it needs assigned (inside its port's window), capabilities.  Fills
 * *d (not yet started); false with a failure recorded if it is not a usable
 * modern virtio-pci device.
 */
bool virtio_attach(struct virtio_dev *d, u16 bdf, const struct virtio_opts *o);
/* Options from the command line (transport left as given). */
void virtio_opts_parse(struct virtio_opts *o);

/*
 * Reset, ACKNOWLEDGE, DRIVER, negotiate (offered & (want | VERSION_1 | the
 * ring features the options accept)), FEATURES_OK and check it stuck, then
 * set up the interrupt mode.  false (with a failure recorded) if any step fails.
 */
bool virtio_start(struct virtio_dev *d, u64 want);
/* Set up queue `qi`: `size` entries (0 = the device's maximum, capped at 256). NULL on failure. */
struct vq *virtio_queue(struct virtio_dev *d, unsigned int qi, u16 size, unsigned int indirect_max);
/* DRIVER_OK; interrupts on for the interrupt modes.  false if the device refused. */
bool virtio_ready(struct virtio_dev *d);
/* Reset the device and undo the interrupt set-up and COMMAND. */
void virtio_close(struct virtio_dev *d);
/*
 * Forget a device that is gone (surprise-removed): give back its interrupt
 * vectors without touching its registers, which no longer answer.
 */
void virtio_forget(struct virtio_dev *d);

static inline bool virtio_has(const struct virtio_dev *d, unsigned int bit)
{
	return d->features & BIT64(bit);
}

u8 virtio_get_status(struct virtio_dev *d);
void virtio_set_status(struct virtio_dev *d, u8 s);
/* Device configuration space (§2.5), read consistently with the config generation. */
u8 virtio_cfg8(struct virtio_dev *d, unsigned int off);
u16 virtio_cfg16(struct virtio_dev *d, unsigned int off);
u32 virtio_cfg32(struct virtio_dev *d, unsigned int off);
u64 virtio_cfg64(struct virtio_dev *d, unsigned int off);
/* A driver write to the device configuration space (§2.5.1: the driver-writable fields). */
void virtio_cfg_write32(struct virtio_dev *d, unsigned int off, u32 v);
/* Read-and-clear the ISR (pci) or read-and-ACK InterruptStatus (mmio); the bits that were set. */
u32 virtio_isr_ack(struct virtio_dev *d);
/* Print one line describing the device, prefixed by "# ". */
void virtio_describe(const struct virtio_dev *d);

/* ---- virtqueue operations ---- */

struct vbuf {
	u64 addr;
	u32 len;
	bool write; /* device-writable */
};

/*
 * Make a chain of n buffers available (device-readable ones first), as one
 * indirect descriptor when `indirect` (needs the feature).  Does not kick.
 * Returns the head, or -1 when the ring is full or the request is invalid.
 */
int vq_add(struct vq *q, const struct vbuf *b, unsigned int n, bool indirect);
/* Notify the device of what was added since the last kick, unless it suppressed kicks. */
void vq_kick(struct vq *q);
/* True when the device has used buffers the driver has not consumed. */
static inline bool vq_has_used(const struct vq *q)
{
	return *(volatile u16 *)&q->used[1] != q->last_used;
}
/* Consume one used element: its head and length; false if none (or a bad element, counted). */
bool vq_get_used(struct vq *q, u16 *head, u32 *len);
/*
 * Wait up to `ms` for a used buffer: spinning (poll) or on the queue's
 * interrupt counter (other modes, acknowledging ISR / InterruptStatus).  A
 * buffer whose interrupt does not follow within VQ_IRQ_GRACE_MS is taken
 * anyway and counted in lost_irqs.
 */
bool vq_wait(struct vq *q, u64 ms);
/* vq_wait + vq_get_used. */
bool vq_wait_get(struct vq *q, u16 *head, u32 *len, u64 ms);
/* Ask for (true) or suppress (false) used-buffer notifications on this queue. */
void vq_want_irq(struct vq *q, bool on);
/*
 * Record a failure for bad used elements or lost interrupts seen on q, and in
 * an interrupt mode for no interrupt at all (waiting up to VQ_IRQ_GRACE_MS for
 * a late one); true if all is well.
 */
bool vq_expect_clean(const struct vq *q);
/* Interrupts counted so far on the queue's vector (0 if it has none). */
static inline u32 vq_irqs(const struct vq *q)
{
	return q->vector ? irq_count[q->vector] : 0;
}

/* ---- helpers for the device tests ---- */

/* The value of test.<key> as a number, or `def`. */
u64 cmdline_num(const char *key, u64 def);
/* A 64-bit pseudo-random generator (xorshift64*). */
u64 prng_next(u64 *state);
/* Busy-wait helper with a deadline in TSC ticks. */
static inline u64 deadline_ms(u64 ms)
{
	return rdtsc() + ms * tsc_per_ms();
}
/* Hex-dump up to `n` bytes in one line into buf. */
void hex_line(char *buf, size_t size, const u8 *p, size_t n);

/* ---- virtio-blk (§5.2) ---- */

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO       5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9
#define VIRTIO_BLK_F_TOPOLOGY 10

#define VIRTIO_BLK_T_IN     0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20
#define VBLK_STATUS_TIMEOUT 0xff /* no completion in time */
#define VBLK_STATUS_UNSET   0xee /* what the status byte holds before the device writes it */

struct vblk_req {
	u32 type;
	u32 reserved;
	u64 sector;
	u8 status;
	u8 pad[15];
};

#define VBLK_MAX_TAGS 64

struct vblk {
	struct virtio_dev dev;
	struct vq *q;
	u64 capacity; /* 512-byte sectors */
	u32 size_max, seg_max;
	bool ro;
	struct vblk_req *req;        /* one header + status per tag */
	int head_tag[VQ_MAX_SIZE];   /* tag of an in-flight head */
	u32 used_len[VBLK_MAX_TAGS]; /* what the device reported for each tag */
	bool busy[VBLK_MAX_TAGS];
};

/* Negotiate (FLUSH, RO, SIZE_MAX, SEG_MAX, BLK_SIZE), set up the request queue, DRIVER_OK. */
bool vblk_start(struct vblk *b, unsigned int indirect_max);
/*
 * Queue request `tag`: data `len` bytes at `buf` split into `nseg` segments
 * (or fewer: at most size_max each), as an indirect chain when `indirect`.
 * Does not kick.  false if the ring is full.
 */
bool vblk_submit(struct vblk *b, unsigned int tag, u32 type, u64 sector, void *buf, u32 len,
                 unsigned int nseg, bool indirect);
/* Wait for one completion: its tag and status.  false on timeout. */
bool vblk_complete(struct vblk *b, unsigned int *tag, u8 *status, u64 ms);
/* One synchronous request (tag 0); the status byte (VBLK_STATUS_TIMEOUT if none came). */
u8 vblk_io(struct vblk *b, u32 type, u64 sector, void *buf, u32 len, unsigned int nseg,
           bool indirect);

/*
 * ---- the device tests' bodies (t_virtio_<dev>.c), for a device found by
 * virtio_open() or virtio_attach() and not yet started: each starts it, runs
 * its exchange with the host side, checks it, and leaves it open (the caller
 * closes it and releases the DMA memory it used) ----
 */
void virtio_net_exercise(struct virtio_dev *d);   /* test.net=slirp|tap and its words */
void virtio_vsock_exercise(struct virtio_dev *d); /* test.vsock_* words */
void virtio_rng_exercise(struct virtio_dev *d);

/* ---- virtio-net (§5.1) ---- */

#define VIRTIO_NET_F_MAC    5
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_HDR_LEN  12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */

/* ---- virtio-vsock (§5.10) ---- */

#define VSOCK_HOST_CID 2

#endif
