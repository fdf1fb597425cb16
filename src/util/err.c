/* err.c - setup error records (see err.h). */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int err_vset(struct err *e, int errnum, int with_strerror, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static int err_vset(struct err *e, int errnum, int with_strerror, const char *fmt, va_list ap)
{
	if (errnum < 0)
		errnum = -errnum;
	if (!e)
		return -errnum;
	if (e->code)
		return -errnum;
	e->code = -errnum;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	if (with_strerror) {
		size_t n = strlen(e->msg);

		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(errnum));
	}
	return -errnum;
}

int err_set(struct err *e, int errnum, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = err_vset(e, errnum, 0, fmt, ap);
	va_end(ap);
	return r;
}

int err_sys(struct err *e, int errnum, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = err_vset(e, errnum, 1, fmt, ap);
	va_end(ap);
	return r;
}

void err_prefix(struct err *e, const char *fmt, ...)
{
	char pre[256];
	size_t pl, room;
	va_list ap;

	if (!e || !e->code)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	pl = strlen(pre) + 2; /* "<pre>: " */
	room = sizeof(e->msg) - pl;
	memmove(e->msg + pl, e->msg, room);
	e->msg[sizeof(e->msg) - 1] = '\0';
	memcpy(e->msg, pre, pl - 2);
	e->msg[pl - 2] = ':';
	e->msg[pl - 1] = ' ';
}

void err_clear(struct err *e)
{
	e->code = 0;
	e->msg[0] = '\0';
}
