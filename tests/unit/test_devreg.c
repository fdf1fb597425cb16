/* test_devreg.c - the device registry: order, names, ops, saved state and its refusals. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "vmm/devreg.h"

/* A fake device: a counter that is its state, and a log of the ops called on it. */
struct fake {
	uint32_t value;
	int paused;
	char *log; /* shared: one letter per op, in call order */
};

static void log_op(struct fake *f, char op, const char *name)
{
	size_t n = strlen(f->log);

	f->log[n] = op;
	f->log[n + 1] = name[0];
	f->log[n + 2] = 0;
}

static void f_pause(struct dev *d)
{
	struct fake *f = d->obj;

	f->paused++;
	log_op(f, 'p', d->name);
}

static void f_resume(struct dev *d)
{
	struct fake *f = d->obj;

	f->paused--;
	log_op(f, 'r', d->name);
}

static void f_save(struct dev *d, struct snap_w *w)
{
	snap_put_u32(w, ((struct fake *)d->obj)->value);
}

static int f_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	uint32_t v = 0;

	if (!snap_get_u32(r, &v))
		return snap_done(r, d->name, e);
	if (v > 1000)
		return err_set(e, EINVAL, "%s: %u is out of range", d->name, v);
	((struct fake *)d->obj)->value = v;
	return 0;
}

static const struct dev_ops disk_ops = {
    .kind = "block", .pause = f_pause, .resume = f_resume, .save = f_save, .restore = f_restore};
static const struct dev_ops port_ops = {.kind = "root-port", .save = f_save, .restore = f_restore};
static const struct dev_ops nic_ops = {.kind = "net", .pause = f_pause, .resume = f_resume};
static const struct dev_ops host_ops = {.kind = "vfio", .nosave = "it is the host's"};

/* rp1 <- a (block), b (net) on bus 0, c (block) behind rp1. */
struct bed {
	struct devreg reg;
	struct dev rp1, a, b, c;
	struct fake frp, fa, fb, fc;
	char log[64];
};

static void bed_init(struct bed *t, uint32_t base)
{
	struct err e = {0};

	memset(t, 0, sizeof(*t));
	devreg_init(&t->reg);
	t->frp = (struct fake){base + 1, 0, t->log};
	t->fa = (struct fake){base + 2, 0, t->log};
	t->fb = (struct fake){base + 3, 0, t->log};
	t->fc = (struct fake){base + 4, 0, t->log};
	t->rp1 = (struct dev){.name = "rp1", .ops = &port_ops, .obj = &t->frp};
	t->a = (struct dev){.name = "a", .ops = &disk_ops, .obj = &t->fa};
	t->b = (struct dev){.name = "b", .ops = &nic_ops, .obj = &t->fb};
	t->c = (struct dev){.name = "c", .ops = &disk_ops, .obj = &t->fc, .parent = &t->rp1};
	CHECK_EQ(devreg_add(&t->reg, &t->rp1, &e), 0);
	CHECK_EQ(devreg_add(&t->reg, &t->a, &e), 0);
	CHECK_EQ(devreg_add(&t->reg, &t->b, &e), 0);
	CHECK_EQ(devreg_add(&t->reg, &t->c, &e), 0);
}

TEST(add_find_remove_in_order)
{
	struct bed t;
	struct dev dup = {.name = "a", .ops = &disk_ops}, other = {.name = "a", .ops = &nic_ops};
	struct dev noops = {.name = "x"};
	struct err e = {0};
	const char *order[4];
	int n = 0;

	bed_init(&t, 0);
	DEVREG_FOR_EACH(&t.reg, d)
	order[n++] = d->name;
	CHECK_EQ(n, 4);
	CHECK(!strcmp(order[0], "rp1") && !strcmp(order[1], "a") && !strcmp(order[3], "c"));
	CHECK(devreg_find(&t.reg, "block", "c") == &t.c);
	CHECK(devreg_find(&t.reg, "net", "c") == NULL);
	CHECK_EQ(devreg_count(&t.reg, "block"), 2);
	CHECK_EQ(devreg_count(&t.reg, NULL), 4);
	/* A kind's names are unique; a drive and a NIC may share one. */
	CHECK_EQ(devreg_add(&t.reg, &dup, &e), -EEXIST);
	CHECK_STR_CONTAINS(e.msg, "already has a block device named a");
	CHECK_EQ(devreg_add(&t.reg, &other, NULL), 0);
	CHECK_EQ(devreg_count(&t.reg, "net"), 2);
	devreg_remove(&t.reg, &other);
	CHECK_EQ(devreg_add(&t.reg, &t.a, NULL), -EINVAL); /* already on */
	CHECK_EQ(devreg_add(&t.reg, &noops, NULL), -EINVAL);
	/* Out of the middle, then the ends. */
	devreg_remove(&t.reg, &t.a);
	devreg_remove(&t.reg, &t.a); /* twice: nothing */
	CHECK(t.rp1.next == &t.b && t.b.prev == &t.rp1);
	CHECK(devreg_find(&t.reg, "block", "a") == NULL);
	devreg_remove(&t.reg, &t.rp1);
	devreg_remove(&t.reg, &t.c);
	CHECK(t.reg.first == &t.b && t.reg.last == &t.b && t.reg.n == 1);
	CHECK_EQ(devreg_add(&t.reg, &t.a, NULL), 0); /* back, at the end */
	CHECK(t.reg.last == &t.a && t.b.next == &t.a);
}

TEST(same_name_other_kind)
{
	struct devreg reg;
	struct fake f = {0};
	struct dev d = {.name = "eth0", .ops = &disk_ops, .obj = &f};
	struct dev n = {.name = "eth0", .ops = &nic_ops, .obj = &f};

	devreg_init(&reg);
	CHECK_EQ(devreg_add(&reg, &d, NULL), 0);
	CHECK_EQ(devreg_add(&reg, &n, NULL), 0);
	CHECK(devreg_find(&reg, "net", "eth0") == &n);
	CHECK(devreg_find(&reg, "block", "eth0") == &d);
}

TEST(pause_in_order_resume_in_reverse)
{
	struct bed t;

	bed_init(&t, 0);
	devreg_pause(&t.reg);
	CHECK(!strcmp(t.log, "papbpc"));
	CHECK(t.fa.paused == 1 && t.fb.paused == 1 && t.fc.paused == 1 && t.frp.paused == 0);
	t.log[0] = 0;
	devreg_resume(&t.reg);
	CHECK(!strcmp(t.log, "rcrbra"));
	CHECK(t.fa.paused == 0 && t.fc.paused == 0);
}

TEST(save_restore_round_trip)
{
	struct bed src, dst;
	struct snap_w w;
	struct snap_r r;
	struct err e = {0};

	bed_init(&src, 100);
	bed_init(&dst, 500);
	snap_w_init(&w);
	CHECK_EQ(devreg_save(&src.reg, &w, &e), 0);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(devreg_restore(&dst.reg, &r, &e), 0);
	CHECK_EQ(r.off, w.len);
	/* Each saved device's state is back; the NIC saves nothing and keeps its own. */
	CHECK_EQ(dst.frp.value, 101);
	CHECK_EQ(dst.fa.value, 102);
	CHECK_EQ(dst.fb.value, 503);
	CHECK_EQ(dst.fc.value, 104);
	snap_w_free(&w);
}

TEST(restore_refuses_another_vm)
{
	struct bed src, dst;
	struct snap_w w;
	struct snap_r r;
	struct err e = {0};
	struct fake fx = {0, 0, src.log};
	struct dev extra = {.name = "d", .ops = &disk_ops, .obj = &fx};

	bed_init(&src, 0);
	snap_w_init(&w);
	CHECK_EQ(devreg_save(&src.reg, &w, &e), 0);

	/* One more saved device in the VM restored into. */
	bed_init(&dst, 0);
	CHECK_EQ(devreg_add(&dst.reg, &extra, NULL), 0);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(devreg_restore(&dst.reg, &r, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "the saved VM has 3 devices with state, this one 4");

	/* The same devices built in another order (a restore builds a hot-plugged device with
	 * the others): each found by kind and name. */
	bed_init(&dst, 700);
	devreg_remove(&dst.reg, &dst.a);
	CHECK_EQ(devreg_add(&dst.reg, &dst.a, NULL), 0);
	e = (struct err){0};
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(devreg_restore(&dst.reg, &r, &e), 0);
	CHECK_EQ(dst.fa.value, 2);
	CHECK_EQ(dst.fc.value, 4);
	CHECK_EQ(dst.frp.value, 1);

	/* A saved device this VM does not have (as many devices, another name). */
	bed_init(&dst, 0);
	snprintf(dst.a.name, sizeof(dst.a.name), "z");
	e = (struct err){0};
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(devreg_restore(&dst.reg, &r, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "the saved state has block a, which this VM does not have");

	/* The same device behind another parent. */
	bed_init(&dst, 0);
	dst.c.parent = NULL;
	e = (struct err){0};
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(devreg_restore(&dst.reg, &r, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "block c behind rp1 where this VM has it on bus 0");
	snap_w_free(&w);
}

TEST(restore_refuses_short_or_bad_state)
{
	struct bed src, dst;
	struct snap_w w;
	struct snap_r r;
	struct err e = {0};
	size_t cut;

	bed_init(&src, 0);
	snap_w_init(&w);
	CHECK_EQ(devreg_save(&src.reg, &w, &e), 0);
	/* Every truncation is an error, never a crash or a partial success. */
	for (cut = 0; cut < w.len; cut++) {
		bed_init(&dst, 0);
		e = (struct err){0};
		snap_r_init(&r, w.buf, cut);
		CHECK_EQ(devreg_restore(&dst.reg, &r, &e), -EINVAL);
		CHECK(e.msg[0] != 0);
	}
	/* A value the device refuses: c's state is the last u32 of the stream. */
	src.fc.value = 5000;
	snap_w_free(&w);
	snap_w_init(&w);
	CHECK_EQ(devreg_save(&src.reg, &w, &e), 0);
	bed_init(&dst, 0);
	e = (struct err){0};
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(devreg_restore(&dst.reg, &r, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "c: 5000 is out of range");
	snap_w_free(&w);
}

TEST(save_refuses_a_host_device)
{
	struct bed t;
	struct dev host = {.name = "gpu0", .ops = &host_ops};
	struct snap_w w;
	struct err e = {0};

	bed_init(&t, 0);
	CHECK_EQ(devreg_add(&t.reg, &host, NULL), 0);
	snap_w_init(&w);
	CHECK_EQ(devreg_save(&t.reg, &w, &e), -ENOTSUP);
	CHECK_STR_CONTAINS(e.msg, "gpu0 (vfio) cannot be saved: it is the host's");
	CHECK_EQ(w.len, 0);
	snap_w_free(&w);
}

int main(void)
{
	RUN(add_find_remove_in_order);
	RUN(same_name_other_kind);
	RUN(pause_in_order_resume_in_reverse);
	RUN(save_restore_round_trip);
	RUN(restore_refuses_another_vm);
	RUN(restore_refuses_short_or_bad_state);
	RUN(save_refuses_a_host_device);
	return test_summary();
}
