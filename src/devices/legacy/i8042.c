/* i8042.c - 8042 keyboard controller and MF2 keyboard model (see i8042.h). */
#include "devices/legacy/i8042.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/*
 * Register bits and commands as in the IBM PS/2 Hardware Interface Technical
 * Reference ("Keyboard/Auxiliary Device Controller"); Linux's
 * drivers/input/serio/i8042.h names the same values.
 */

/* Status register (port 0x64 read). */
#define ST_OBF  0x01 /* output buffer full */
#define ST_SYS  0x04 /* system flag, mirrors command byte bit 2 */
#define ST_CMD  0x08 /* A2: last write was to port 0x64 */
#define ST_INH  0x10 /* 1 = keyboard not inhibited (keylock switch) */
#define ST_AUXB 0x20 /* output buffer holds auxiliary-device data */

/* Command byte (controller RAM byte 0). */
#define CB_KBDINT 0x01 /* IRQ1 when the output buffer fills */
#define CB_SYS    0x04
#define CB_KBDDIS 0x10 /* keyboard interface disabled */
#define CB_AUXDIS 0x20 /* auxiliary interface disabled */
#define CB_XLATE  0x40 /* translate keyboard scan codes to set 1 */

/* Output port. */
#define OP_RESET 0x01 /* CPU reset line, active low */
#define OP_A20   0x02

/* Controller commands (port 0x64 write). */
#define CMD_READ_RAM      0x20 /* 0x20-0x3f: read RAM byte (cmd & 0x1f) */
#define CMD_WRITE_RAM     0x60 /* 0x60-0x7f: write RAM byte, data follows */
#define CMD_AUX_DISABLE   0xa7
#define CMD_AUX_ENABLE    0xa8
#define CMD_AUX_TEST      0xa9
#define CMD_SELF_TEST     0xaa
#define CMD_KBD_TEST      0xab
#define CMD_KBD_DISABLE   0xad
#define CMD_KBD_ENABLE    0xae
#define CMD_READ_INPORT   0xc0
#define CMD_READ_OUTPORT  0xd0
#define CMD_WRITE_OUTPORT 0xd1
#define CMD_WRITE_KBD_OB  0xd2
#define CMD_WRITE_AUX_OB  0xd3
#define CMD_WRITE_AUX     0xd4
#define CMD_A20_OFF       0xdd
#define CMD_A20_ON        0xdf
#define CMD_PULSE         0xf0 /* 0xf0-0xff: pulse output port bits that are 0 in the low nibble */

/* Keyboard commands and replies (port 0x60 write with no controller command pending). */
#define KBD_SET_LEDS  0xed
#define KBD_ECHO      0xee
#define KBD_SCAN_SET  0xf0
#define KBD_IDENTIFY  0xf2
#define KBD_TYPEMATIC 0xf3
#define KBD_RESET     0xff
#define KBD_ACK       0xfa
#define KBD_RESEND    0xfe
#define KBD_BAT_OK    0xaa

static void signal_fd(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	if (fd < 0)
		return;
	do
		n = write(fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

/* A byte has just reached the output buffer: IRQ1 edge if the guest enabled it. */
static void obf_filled(struct i8042 *k)
{
	if (k->ram[0] & CB_KBDINT)
		signal_fd(k->irq1_fd);
}

static int queue_push(struct i8042 *k, uint8_t b)
{
	if (k->q_count == I8042_QUEUE) {
		log_guest(&k->rl, LOG_DEBUG, "i8042: output buffer overflow, byte 0x%02x lost", b);
		return -ENOSPC;
	}
	k->queue[(k->q_head + k->q_count) % I8042_QUEUE] = b;
	if (k->q_count++ == 0)
		obf_filled(k);
	return 0;
}

static void queue_flush(struct i8042 *k)
{
	k->q_head = 0;
	k->q_count = 0;
}

/* A reply from the controller or the keyboard: it is what the guest reads next. */
static void reply(struct i8042 *k, uint8_t b)
{
	queue_flush(k);
	queue_push(k, b);
}

static uint8_t queue_pop(struct i8042 *k)
{
	uint8_t b;

	if (!k->q_count)
		return 0;
	b = k->queue[k->q_head];
	k->q_head = (k->q_head + 1) % I8042_QUEUE;
	if (--k->q_count)
		obf_filled(k); /* the next byte moves into the output buffer */
	return b;
}

/* The keyboard's side of a byte written to port 0x60 (an MF2 keyboard, acknowledging). */
static void keyboard_write(struct i8042 *k, uint8_t v)
{
	uint8_t param_of = k->kbd_pending;

	k->kbd_pending = 0;
	if (param_of) {
		reply(k, KBD_ACK);
		if (param_of == KBD_SCAN_SET && v == 0)
			queue_push(k, 2); /* "which set?": set 2, what the keyboard itself sends */
		return;
	}
	switch (v) {
	case KBD_SET_LEDS:
	case KBD_SCAN_SET:
	case KBD_TYPEMATIC:
		reply(k, KBD_ACK);
		k->kbd_pending = v;
		return;
	case KBD_ECHO:
		reply(k, KBD_ECHO);
		return;
	case KBD_IDENTIFY:
		reply(k, KBD_ACK);
		queue_push(k, 0xab); /* MF2 keyboard ID */
		queue_push(k, 0x83);
		return;
	case KBD_RESET:
		reply(k, KBD_ACK);
		queue_push(k, KBD_BAT_OK);
		return;
	default:
		if (v >= 0xf4) { /* enable, disable, defaults, set-all-keys, resend */
			reply(k, KBD_ACK);
			return;
		}
		log_guest(&k->rl, LOG_DEBUG, "i8042: unknown keyboard command 0x%02x", v);
		reply(k, KBD_RESEND);
		return;
	}
}

/* Returns true if the guest asked for a CPU reset. */
static bool set_outport(struct i8042 *k, uint8_t v)
{
	k->outport = v;
	return !(v & OP_RESET);
}

static void set_command_byte(struct i8042 *k, uint8_t v)
{
	uint8_t old = k->ram[0];

	k->ram[0] = v;
	/* IRQ1 is OBF gated by the interrupt bit: enabling it with data waiting is an edge. */
	if (!(old & CB_KBDINT) && (v & CB_KBDINT) && k->q_count)
		signal_fd(k->irq1_fd);
}

/* A controller command written to port 0x64.  Returns true on a reset request. */
static bool controller_command(struct i8042 *k, uint8_t cmd)
{
	k->pending_cmd = 0;
	if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + 0x20) {
		reply(k, k->ram[cmd & 0x1f]);
		return false;
	}
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) {
		k->pending_cmd = cmd;
		return false;
	}
	if (cmd >= CMD_PULSE) {
		/* Bits that are 0 in the low nibble are pulsed low; bit 0 is the reset line. */
		return !(cmd & OP_RESET);
	}
	switch (cmd) {
	case CMD_AUX_DISABLE:
		k->ram[0] |= CB_AUXDIS;
		return false;
	case CMD_AUX_ENABLE:
		k->ram[0] &= ~CB_AUXDIS;
		return false;
	case CMD_AUX_TEST:
		reply(k, 0x02); /* "clock line stuck high": nothing attached */
		return false;
	case CMD_SELF_TEST:
		k->ram[0] |= CB_SYS;
		reply(k, 0x55);
		return false;
	case CMD_KBD_TEST:
		reply(k, 0x00);
		return false;
	case CMD_KBD_DISABLE:
		k->ram[0] |= CB_KBDDIS;
		return false;
	case CMD_KBD_ENABLE:
		k->ram[0] &= ~CB_KBDDIS;
		return false;
	case CMD_READ_INPORT:
		reply(k, 0x80); /* bit 7: keyboard not inhibited */
		return false;
	case CMD_READ_OUTPORT:
		reply(k, k->outport);
		return false;
	case CMD_WRITE_OUTPORT:
	case CMD_WRITE_KBD_OB:
	case CMD_WRITE_AUX_OB:
	case CMD_WRITE_AUX:
		k->pending_cmd = cmd;
		return false;
	case CMD_A20_OFF:
		k->outport &= ~OP_A20;
		return false;
	case CMD_A20_ON:
		k->outport |= OP_A20;
		return false;
	}
	log_guest(&k->rl, LOG_WARN, "i8042: unknown controller command 0x%02x ignored", cmd);
	return false;
}

/* The byte for a pending controller command.  Returns true on a reset request. */
static bool command_data(struct i8042 *k, uint8_t cmd, uint8_t v)
{
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) {
		if ((cmd & 0x1f) == 0)
			set_command_byte(k, v);
		else
			k->ram[cmd & 0x1f] = v;
		return false;
	}
	switch (cmd) {
	case CMD_WRITE_OUTPORT:
		return set_outport(k, v);
	case CMD_WRITE_KBD_OB:
		reply(k, v);
		return false;
	case CMD_WRITE_AUX_OB:
		/* No aux port: echo without ST_AUXB so drivers see a failed loop test. */
		reply(k, v);
		return false;
	case CMD_WRITE_AUX:
		log_guest(&k->rl, LOG_DEBUG, "i8042: byte 0x%02x for the absent aux device", v);
		return false;
	}
	return false;
}

static void do_reset(struct i8042 *k, bool reset)
{
	if (reset && k->reset)
		k->reset(k->opaque);
}

static uint64_t data_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct i8042 *k = opaque;
	uint8_t v;

	if (offset != 0 || size != 1) {
		log_guest(&k->rl, LOG_WARN, "i8042: %u-byte read at data port offset %llu", size,
		          (unsigned long long)offset);
		return ~0ull;
	}
	pthread_mutex_lock(&k->lock);
	v = queue_pop(k);
	pthread_mutex_unlock(&k->lock);
	return v;
}

static void data_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct i8042 *k = opaque;
	bool reset = false;
	uint8_t cmd;

	if (offset != 0 || size != 1) {
		log_guest(&k->rl, LOG_WARN, "i8042: %u-byte write at data port offset %llu", size,
		          (unsigned long long)offset);
		return;
	}
	pthread_mutex_lock(&k->lock);
	k->last_was_cmd = 0;
	cmd = k->pending_cmd;
	k->pending_cmd = 0;
	if (cmd)
		reset = command_data(k, cmd, (uint8_t)value);
	else
		keyboard_write(k, (uint8_t)value);
	pthread_mutex_unlock(&k->lock);
	do_reset(k, reset);
}

static uint64_t cmd_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct i8042 *k = opaque;
	uint8_t v;

	if (offset != 0 || size != 1) {
		log_guest(&k->rl, LOG_WARN, "i8042: %u-byte read at status port offset %llu", size,
		          (unsigned long long)offset);
		return ~0ull;
	}
	pthread_mutex_lock(&k->lock);
	v = (k->q_count ? ST_OBF : 0) | (k->ram[0] & CB_SYS ? ST_SYS : 0) |
	    (k->last_was_cmd ? ST_CMD : 0) | ST_INH;
	pthread_mutex_unlock(&k->lock);
	return v;
}

static void cmd_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct i8042 *k = opaque;
	bool reset;

	if (offset != 0 || size != 1) {
		log_guest(&k->rl, LOG_WARN, "i8042: %u-byte write at command port offset %llu",
		          size, (unsigned long long)offset);
		return;
	}
	pthread_mutex_lock(&k->lock);
	k->last_was_cmd = 1;
	reset = controller_command(k, (uint8_t)value);
	pthread_mutex_unlock(&k->lock);
	do_reset(k, reset);
}

const struct bus_ops i8042_data_ops = {.read = data_read, .write = data_write};
const struct bus_ops i8042_cmd_ops = {.read = cmd_read, .write = cmd_write};

int i8042_init(struct i8042 *k, void (*reset)(void *opaque), void *opaque, int irq1_fd)
{
	int rc;

	memset(k, 0, sizeof(*k));
	rc = pthread_mutex_init(&k->lock, NULL);
	if (rc)
		return -rc;
	k->reset = reset;
	k->opaque = opaque;
	k->irq1_fd = irq1_fd;
	k->ram[0] = CB_KBDINT | CB_SYS;
	k->outport = OP_RESET | OP_A20;
	return 0;
}

void i8042_destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}

int i8042_send_ctrl_alt_del(struct i8042 *k)
{
	/* Press Ctrl, Alt, Delete; release them in the same order. */
	static const uint8_t set1[] = {0x1d, 0x38, 0xe0, 0x53, 0x9d, 0xb8, 0xe0, 0xd3};
	static const uint8_t set2[] = {0x14, 0x11, 0xe0, 0x71, 0xf0, 0x14,
	                               0xf0, 0x11, 0xe0, 0xf0, 0x71};
	const uint8_t *codes;
	size_t n, i;
	int rc = 0;

	pthread_mutex_lock(&k->lock);
	if (k->ram[0] & CB_XLATE) {
		codes = set1;
		n = sizeof(set1);
	} else {
		codes = set2;
		n = sizeof(set2);
	}
	if (I8042_QUEUE - k->q_count < n) {
		rc = -ENOSPC;
	} else {
		for (i = 0; i < n; i++)
			queue_push(k, codes[i]);
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

#define SNAP_I842 SNAP_TAG('I', '8', '4', '2')

void i8042_save(struct i8042 *k, struct snap_w *w)
{
	size_t at;

	pthread_mutex_lock(&k->lock);
	at = snap_begin(w, SNAP_I842, 1);
	snap_put(w, k->ram, sizeof(k->ram));
	snap_put_u8(w, k->outport);
	snap_put_u8(w, k->last_was_cmd);
	snap_put_u8(w, k->pending_cmd);
	snap_put_u8(w, k->kbd_pending);
	snap_put_u32(w, k->q_count);
	for (unsigned int i = 0; i < k->q_count; i++)
		snap_put_u8(w, k->queue[(k->q_head + i) % I8042_QUEUE]);
	snap_end(w, at);
	pthread_mutex_unlock(&k->lock);
}

int i8042_restore(struct i8042 *k, struct snap_r *r, struct err *e)
{
	struct snap_r b;
	uint16_t ver;
	uint32_t n = 0;
	uint8_t ram[sizeof(k->ram)], reg[4];
	int rc = snap_section(r, SNAP_I842, 1, "i8042", &ver, &b, e);

	if (rc < 0)
		return rc;
	snap_get(&b, ram, sizeof(ram));
	snap_get(&b, reg, sizeof(reg));
	snap_get_u32(&b, &n);
	if (b.err)
		return snap_done(&b, "i8042", e);
	if (n > I8042_QUEUE)
		return err_set(e, EINVAL, "i8042: %u saved bytes in a %u-byte queue", n,
		               I8042_QUEUE);
	pthread_mutex_lock(&k->lock);
	memcpy(k->ram, ram, sizeof(ram));
	k->outport = reg[0];
	k->last_was_cmd = reg[1];
	k->pending_cmd = reg[2];
	k->kbd_pending = reg[3];
	k->q_head = 0;
	k->q_count = 0;
	for (uint32_t i = 0; i < n && snap_get_u8(&b, &k->queue[i]); i++)
		k->q_count = i + 1;
	pthread_mutex_unlock(&k->lock);
	return snap_done(&b, "i8042", e);
}
