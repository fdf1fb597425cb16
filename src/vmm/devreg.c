/* devreg.c - the device registry (devreg.h). */
#include "vmm/devreg.h"

#include <errno.h>
#include <string.h>

#define SNAP_DEVS SNAP_TAG('D', 'E', 'V', 'S')
#define SNAP_DEV  SNAP_TAG('D', 'E', 'V', ' ')

void devreg_init(struct devreg *reg)
{
	*reg = (struct devreg){0};
}

int devreg_add(struct devreg *reg, struct dev *d, struct err *e)
{
	if (d->registered || !d->ops || !d->ops->kind)
		return err_set(e, EINVAL, "%s: not a device that can be added", d->name);
	if (devreg_find(reg, d->ops->kind, d->name))
		return err_set(e, EEXIST, "this VM already has a %s device named %s", d->ops->kind,
		               d->name);
	d->prev = reg->last;
	d->next = NULL;
	if (reg->last)
		reg->last->next = d;
	else
		reg->first = d;
	reg->last = d;
	reg->n++;
	d->registered = true;
	return 0;
}

void devreg_remove(struct devreg *reg, struct dev *d)
{
	if (!d->registered)
		return;
	if (d->prev)
		d->prev->next = d->next;
	else
		reg->first = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		reg->last = d->prev;
	d->prev = d->next = NULL;
	d->registered = false;
	reg->n--;
}

struct dev *devreg_find(const struct devreg *reg, const char *kind, const char *name)
{
	DEVREG_FOR_EACH(reg, d)
	if (!strcmp(d->ops->kind, kind) && !strcmp(d->name, name))
		return d;
	return NULL;
}

unsigned int devreg_count(const struct devreg *reg, const char *kind)
{
	unsigned int n = 0;

	DEVREG_FOR_EACH(reg, d)
	n += !kind || !strcmp(d->ops->kind, kind);
	return n;
}

void devreg_pause(struct devreg *reg)
{
	DEVREG_FOR_EACH(reg, d)
	if (d->ops->pause)
		d->ops->pause(d);
}

void devreg_resume(struct devreg *reg)
{
	for (struct dev *d = reg->last; d; d = d->prev)
		if (d->ops->resume)
			d->ops->resume(d);
}

void devreg_collect(struct devreg *reg, struct metrics_values *v)
{
	DEVREG_FOR_EACH(reg, d)
	if (d->ops->collect)
		d->ops->collect(d, v);
}

static void put_str(struct snap_w *w, const char *s)
{
	size_t n = strlen(s);

	snap_put_u8(w, (uint8_t)n);
	snap_put(w, s, n);
}

/* A string saved by put_str into buf (at least 256 bytes). */
static bool get_str(struct snap_r *r, char *buf)
{
	uint8_t n = 0;

	buf[0] = 0;
	if (!snap_get_u8(r, &n) || !snap_get(r, buf, n))
		return false;
	buf[n] = 0;
	return true;
}

static unsigned int saved_count(const struct devreg *reg)
{
	unsigned int n = 0;

	DEVREG_FOR_EACH(reg, d)
	n += d->ops->save != NULL;
	return n;
}

int devreg_save(struct devreg *reg, struct snap_w *w, struct err *e)
{
	size_t at;

	DEVREG_FOR_EACH(reg, d)
	if (d->ops->nosave || d->nosave)
		return err_set(e, ENOTSUP, "%s (%s) cannot be saved: %s", d->name, d->ops->kind,
		               d->nosave ? d->nosave : d->ops->nosave);
	at = snap_begin(w, SNAP_DEVS, 1);
	snap_put_u32(w, saved_count(reg));
	DEVREG_FOR_EACH(reg, d)
	{
		size_t s;

		if (!d->ops->save)
			continue;
		s = snap_begin(w, SNAP_DEV, 1);
		put_str(w, d->ops->kind);
		put_str(w, d->name);
		put_str(w, d->parent ? d->parent->name : "");
		d->ops->save(d, w);
		snap_end(w, s);
	}
	snap_end(w, at);
	if (w->oom)
		return err_set(e, ENOMEM, "out of memory for the devices' state");
	return 0;
}

/*
 * One device's section: a device of this registry (kind and name) behind the same parent,
 * not restored yet, then its state.
 */
static int restore_one(struct devreg *reg, struct snap_r *r, struct err *e)
{
	char kind[256], name[256], parent[256];
	const char *want_parent;
	struct snap_r s;
	struct dev *d;
	uint16_t ver;
	int rc = snap_section(r, SNAP_DEV, 1, "a device", &ver, &s, e);

	if (rc < 0)
		return rc;
	if (!get_str(&s, kind) || !get_str(&s, name) || !get_str(&s, parent))
		return snap_done(&s, "a device", e);
	d = devreg_find(reg, kind, name);
	if (!d || !d->ops->save)
		return err_set(e, EINVAL,
		               "the saved state has %s %s%s%s, which this VM does not have: the VM "
		               "must be built with the devices it was saved with",
		               kind, name, *parent ? " behind " : "", parent);
	if (d->restored)
		return err_set(e, EINVAL, "the saved state has %s %s twice", kind, name);
	want_parent = d->parent ? d->parent->name : "";
	if (strcmp(parent, want_parent))
		return err_set(e, EINVAL,
		               "the saved state has %s %s%s%s where this VM has it%s%s: the VM "
		               "must be built with the devices it was saved with",
		               kind, name, *parent ? " behind " : " on bus 0", parent,
		               *want_parent ? " behind " : " on bus 0", want_parent);
	d->restored = true;
	rc = d->ops->restore ? d->ops->restore(d, &s, e) : 0;
	return rc < 0 ? rc : snap_done(&s, d->name, e);
}

int devreg_restore(struct devreg *reg, struct snap_r *r, struct err *e)
{
	struct snap_r s;
	uint16_t ver;
	uint32_t n = 0, i;
	int rc = snap_section(r, SNAP_DEVS, 1, "devices", &ver, &s, e);

	if (rc < 0)
		return rc;
	if (!snap_get_u32(&s, &n))
		return snap_done(&s, "devices", e);
	if (n != saved_count(reg))
		return err_set(e, EINVAL, "the saved VM has %u devices with state, this one %u", n,
		               saved_count(reg));
	DEVREG_FOR_EACH(reg, d)
	d->restored = false;
	/* In the saved order (the saved VM's build order: a root port before what is behind it). */
	for (i = 0; i < n; i++) {
		rc = restore_one(reg, &s, e);
		if (rc < 0)
			return rc;
	}
	return snap_done(&s, "devices", e);
}
