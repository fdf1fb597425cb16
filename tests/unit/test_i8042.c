/* test_i8042.c - unit tests for the 8042 controller: commands, reset, IRQ1, Ctrl-Alt-Del. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/legacy/i8042.h"
#include "test.h"

struct fix {
	struct i8042 k;
	int irq;
	int resets; /* atomic */
};

static void on_reset(void *opaque)
{
	struct fix *f = opaque;

	__atomic_add_fetch(&f->resets, 1, __ATOMIC_SEQ_CST);
}

static void fix_init(struct fix *f)
{
	f->resets = 0;
	f->irq = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(f->irq >= 0);
	CHECK_EQ(i8042_init(&f->k, on_reset, f, f->irq), 0);
}

static void fix_fini(struct fix *f)
{
	i8042_destroy(&f->k);
	close(f->irq);
}

static uint8_t status(struct fix *f)
{
	return (uint8_t)i8042_cmd_ops.read(&f->k, 0, 1);
}

static void command(struct fix *f, uint8_t c)
{
	i8042_cmd_ops.write(&f->k, 0, c, 1);
}

static uint8_t data_in(struct fix *f)
{
	return (uint8_t)i8042_data_ops.read(&f->k, 0, 1);
}

static void data_out(struct fix *f, uint8_t v)
{
	i8042_data_ops.write(&f->k, 0, v, 1);
}

static uint64_t events(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static int resets(struct fix *f)
{
	return __atomic_load_n(&f->resets, __ATOMIC_SEQ_CST);
}

TEST(initial_state)
{
	struct fix f;

	fix_init(&f);
	CHECK_EQ(status(&f), 0x14); /* not inhibited, system flag, OBF clear */
	command(&f, 0x20);
	CHECK_EQ(status(&f), 0x1d);  /* OBF, and A2: the last write was a command */
	CHECK_EQ(data_in(&f), 0x05); /* keyboard interrupt, system flag, no translation */
	CHECK_EQ(status(&f) & 0x01, 0);
	command(&f, 0xd0);
	CHECK_EQ(data_in(&f), 0x03); /* output port: reset line high, A20 on */
	CHECK_EQ(resets(&f), 0);
	fix_fini(&f);
}

TEST(command_byte)
{
	struct fix f;

	fix_init(&f);
	command(&f, 0x60);
	CHECK(status(&f) & 0x08);
	data_out(&f, 0x47);
	CHECK_EQ(status(&f) & 0x08, 0);
	command(&f, 0x20);
	CHECK_EQ(data_in(&f), 0x47);
	/* Other controller RAM bytes too. */
	command(&f, 0x7f);
	data_out(&f, 0x99);
	command(&f, 0x3f);
	CHECK_EQ(data_in(&f), 0x99);
	/* SYS status follows command byte bit 2. */
	command(&f, 0x60);
	data_out(&f, 0x00);
	CHECK_EQ(status(&f) & 0x04, 0);
	command(&f, 0xaa);
	CHECK_EQ(data_in(&f), 0x55);
	CHECK(status(&f) & 0x04); /* a passed self-test sets it */
	fix_fini(&f);
}

TEST(tests_and_enables)
{
	struct fix f;

	fix_init(&f);
	command(&f, 0xaa);
	CHECK_EQ(data_in(&f), 0x55);
	command(&f, 0xab);
	CHECK_EQ(data_in(&f), 0x00);
	command(&f, 0xad);
	command(&f, 0x20);
	CHECK_EQ(data_in(&f) & 0x10, 0x10);
	command(&f, 0xae);
	command(&f, 0x20);
	CHECK_EQ(data_in(&f) & 0x10, 0x00);
	command(&f, 0xa7);
	command(&f, 0x20);
	CHECK_EQ(data_in(&f) & 0x20, 0x20);
	command(&f, 0xa8);
	command(&f, 0x20);
	CHECK_EQ(data_in(&f) & 0x20, 0x00);
	command(&f, 0xdd);
	command(&f, 0xd0);
	CHECK_EQ(data_in(&f), 0x01);
	command(&f, 0xdf);
	command(&f, 0xd0);
	CHECK_EQ(data_in(&f), 0x03);
	CHECK_EQ(resets(&f), 0);
	fix_fini(&f);
}

TEST(reset_paths)
{
	struct fix f;

	fix_init(&f);
	command(&f, 0xfe); /* pulse bit 0: reset */
	CHECK_EQ(resets(&f), 1);
	command(&f, 0xff); /* pulses nothing */
	command(&f, 0xfd); /* pulses bit 1 (A20) only */
	CHECK_EQ(resets(&f), 1);
	command(&f, 0xf0); /* pulses bits 0-3, including reset */
	CHECK_EQ(resets(&f), 2);
	command(&f, 0xd1);
	data_out(&f, 0x03); /* reset line stays high */
	CHECK_EQ(resets(&f), 2);
	command(&f, 0xd1);
	data_out(&f, 0x02); /* bit 0 cleared: reset */
	CHECK_EQ(resets(&f), 3);
	command(&f, 0xd0);
	CHECK_EQ(data_in(&f), 0x02);
	/* Without a callback nothing happens. */
	fix_fini(&f);
	{
		struct i8042 k;

		CHECK_EQ(i8042_init(&k, NULL, NULL, -1), 0);
		i8042_cmd_ops.write(&k, 0, 0xfe, 1);
		i8042_destroy(&k);
	}
}

TEST(obf_and_irq1)
{
	struct fix f;

	fix_init(&f);
	command(&f, 0x20); /* interrupt bit is set by default */
	CHECK_EQ(events(f.irq), 1);
	CHECK_EQ(data_in(&f), 0x05);
	CHECK_EQ(events(f.irq), 0);
	CHECK_EQ(data_in(&f), 0x00); /* empty: reads 0, no interrupt */
	CHECK_EQ(events(f.irq), 0);
	/* Interrupt bit off: OBF without IRQ1. */
	command(&f, 0x60);
	data_out(&f, 0x04);
	command(&f, 0xab);
	CHECK(status(&f) & 0x01);
	CHECK_EQ(events(f.irq), 0);
	/* Turning it on with data waiting raises the line: an edge. */
	command(&f, 0x60);
	data_out(&f, 0x05);
	CHECK_EQ(events(f.irq), 1);
	CHECK_EQ(data_in(&f), 0x00); /* the 0xab reply was still there */
	/* Keyboard bytes behave the same. */
	command(&f, 0x60);
	data_out(&f, 0x04);
	data_out(&f, 0xee);
	CHECK_EQ(events(f.irq), 0);
	command(&f, 0x60);
	data_out(&f, 0x05);
	CHECK_EQ(events(f.irq), 1);
	CHECK_EQ(data_in(&f), 0xee);
	fix_fini(&f);
}

TEST(aux_absent)
{
	struct fix f;

	fix_init(&f);
	/* Linux i8042_check_aux(): the loop test must fail (no AUXB)... */
	command(&f, 0xd3);
	data_out(&f, 0x5a);
	CHECK_EQ(status(&f) & 0x21, 0x01);
	CHECK_EQ(data_in(&f), 0x5a);
	/* ...and so must the interface test. */
	command(&f, 0xa9);
	CHECK_EQ(data_in(&f), 0x02);
	/* Bytes for the absent device vanish. */
	command(&f, 0xd4);
	data_out(&f, 0xf4);
	CHECK_EQ(status(&f) & 0x01, 0);
	fix_fini(&f);
}

TEST(keyboard)
{
	struct fix f;

	fix_init(&f);
	data_out(&f, 0xf2); /* identify */
	CHECK_EQ(data_in(&f), 0xfa);
	CHECK_EQ(data_in(&f), 0xab);
	CHECK_EQ(data_in(&f), 0x83);
	CHECK_EQ(status(&f) & 0x01, 0);
	CHECK_EQ(events(f.irq), 3); /* one edge per byte reaching the output buffer */
	data_out(&f, 0xff);         /* reset */
	CHECK_EQ(data_in(&f), 0xfa);
	CHECK_EQ(data_in(&f), 0xaa);
	data_out(&f, 0xed); /* LEDs + parameter */
	CHECK_EQ(data_in(&f), 0xfa);
	data_out(&f, 0x07);
	CHECK_EQ(data_in(&f), 0xfa);
	data_out(&f, 0xf0); /* get scan code set */
	CHECK_EQ(data_in(&f), 0xfa);
	data_out(&f, 0x00);
	CHECK_EQ(data_in(&f), 0xfa);
	CHECK_EQ(data_in(&f), 0x02);
	data_out(&f, 0xee);
	CHECK_EQ(data_in(&f), 0xee);
	data_out(&f, 0xf4);
	CHECK_EQ(data_in(&f), 0xfa);
	data_out(&f, 0x01); /* not a command */
	CHECK_EQ(data_in(&f), 0xfe);
	/* 0xd2 puts a byte in the buffer as if the keyboard sent it. */
	command(&f, 0xd2);
	data_out(&f, 0x42);
	CHECK_EQ(data_in(&f), 0x42);
	fix_fini(&f);
}

static void read_all(struct fix *f, uint8_t *out, unsigned int *n)
{
	*n = 0;
	while (status(f) & 0x01)
		out[(*n)++] = data_in(f);
}

TEST(ctrl_alt_del_set2)
{
	static const uint8_t want[] = {0x14, 0x11, 0xe0, 0x71, 0xf0, 0x14,
	                               0xf0, 0x11, 0xe0, 0xf0, 0x71};
	struct fix f;
	uint8_t got[I8042_QUEUE];
	unsigned int n;

	fix_init(&f);
	CHECK_EQ(i8042_send_ctrl_alt_del(&f.k), 0);
	CHECK_EQ(events(f.irq), 1);
	read_all(&f, got, &n);
	CHECK_EQ(n, sizeof(want));
	CHECK(memcmp(got, want, sizeof(want)) == 0);
	CHECK_EQ(events(f.irq), sizeof(want) - 1); /* each following byte is another edge */
	/* All or nothing. */
	CHECK_EQ(i8042_send_ctrl_alt_del(&f.k), 0);
	CHECK_EQ(i8042_send_ctrl_alt_del(&f.k), -ENOSPC);
	read_all(&f, got, &n);
	CHECK_EQ(n, sizeof(want));
	fix_fini(&f);
}

TEST(ctrl_alt_del_set1_when_translating)
{
	static const uint8_t want[] = {0x1d, 0x38, 0xe0, 0x53, 0x9d, 0xb8, 0xe0, 0xd3};
	struct fix f;
	uint8_t got[I8042_QUEUE];
	unsigned int n;

	fix_init(&f);
	command(&f, 0x60);
	data_out(&f, 0x45); /* translation on, as SeaBIOS leaves it */
	CHECK_EQ(i8042_send_ctrl_alt_del(&f.k), 0);
	read_all(&f, got, &n);
	CHECK_EQ(n, sizeof(want));
	CHECK(memcmp(got, want, sizeof(want)) == 0);
	/* With the keyboard interrupt off there is data but no IRQ1. */
	command(&f, 0x60);
	data_out(&f, 0x44);
	events(f.irq);
	CHECK_EQ(i8042_send_ctrl_alt_del(&f.k), 0);
	CHECK_EQ(events(f.irq), 0);
	CHECK(status(&f) & 0x01);
	fix_fini(&f);
}

TEST(bad_accesses)
{
	struct fix f;

	fix_init(&f);
	CHECK_EQ(i8042_data_ops.read(&f.k, 0, 2), ~0ull);
	CHECK_EQ(i8042_cmd_ops.read(&f.k, 1, 1), ~0ull);
	i8042_cmd_ops.write(&f.k, 0, 0xfefe, 2); /* not a 1-byte write: no reset */
	i8042_data_ops.write(&f.k, 3, 0x00, 1);
	CHECK_EQ(resets(&f), 0);
	command(&f, 0x01); /* unknown controller command */
	command(&f, 0xc0);
	CHECK_EQ(data_in(&f), 0x80);
	/* A new command cancels a pending one: 0x60's data never arrives. */
	command(&f, 0x60);
	command(&f, 0x20);
	CHECK_EQ(data_in(&f), 0x05);
	data_out(&f, 0xf4); /* so this is a keyboard command */
	CHECK_EQ(data_in(&f), 0xfa);
	fix_fini(&f);
}

TEST(fuzz_no_crash)
{
	struct fix f;
	uint64_t seed = 99;
	unsigned int i;

	fix_init(&f);
	for (i = 0; i < 100000; i++) {
		uint8_t v;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		v = (uint8_t)(seed >> 56);
		switch ((seed >> 20) % 5) {
		case 0:
			command(&f, v);
			break;
		case 1:
			data_out(&f, v);
			break;
		case 2:
			data_in(&f);
			break;
		case 3:
			status(&f);
			break;
		default:
			i8042_send_ctrl_alt_del(&f.k);
		}
	}
	CHECK(f.k.q_count <= I8042_QUEUE);
	fix_fini(&f);
}

struct cad_arg {
	struct fix *f;
	int done; /* atomic */
	unsigned int sent;
};

static void *cad_thread(void *p)
{
	struct cad_arg *a = p;
	unsigned int i;

	for (i = 0; i < 2000; i++) {
		if (i8042_send_ctrl_alt_del(&a->f->k) == 0)
			a->sent++;
		else
			sched_yield();
	}
	__atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

TEST(concurrent_vmm_and_vcpu)
{
	struct fix f;
	struct cad_arg a = {.f = &f};
	pthread_t t;
	unsigned int bytes = 0;

	fix_init(&f);
	CHECK_EQ(pthread_create(&t, NULL, cad_thread, &a), 0);
	while (!__atomic_load_n(&a.done, __ATOMIC_SEQ_CST) || (status(&f) & 0x01)) {
		if (status(&f) & 0x01) {
			data_in(&f);
			bytes++;
		}
	}
	pthread_join(t, NULL);
	CHECK(a.sent > 0);
	CHECK_EQ(bytes, a.sent * 11); /* every sequence delivered whole, nothing lost */
	fix_fini(&f);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the fuzz test provokes guest warnings on purpose */
	RUN(initial_state);
	RUN(command_byte);
	RUN(tests_and_enables);
	RUN(reset_paths);
	RUN(obf_and_irq1);
	RUN(aux_absent);
	RUN(keyboard);
	RUN(ctrl_alt_del_set2);
	RUN(ctrl_alt_del_set1_when_translating);
	RUN(bad_accesses);
	RUN(fuzz_no_crash);
	RUN(concurrent_vmm_and_vcpu);
	return test_summary();
}
