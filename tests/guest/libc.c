/* libc.c - the test guest's freestanding C library: memory and string functions, printf. */
#include "guest.h"
#include "hw.h"

void *memcpy(void *dst, const void *src, size_t n)
{
	u8 *d = dst;
	const u8 *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	u8 *d = dst;

	while (n--)
		*d++ = (u8)c;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (u8)*a - (u8)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

int strcmp(const char *a, const char *b)
{
	return strncmp(a, b, (size_t)-1);
}

bool parse_u64(const char *s, size_t len, u64 *out)
{
	unsigned int base = 10;
	u64 v = 0;
	size_t i = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == len)
		return false;
	for (; i < len; i++) {
		unsigned int d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (base == 16 && s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (base == 16 && s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

/* Where formatted output goes: a bounded buffer, or COM1 when buf is NULL. */
struct sink {
	char *buf;
	size_t size;
	size_t len; /* characters produced so far (may exceed size) */
};

static void sink_put(struct sink *s, char c)
{
	if (!s->buf) {
		if (c == '\n')
			serial_putc('\r');
		serial_putc(c);
	} else if (s->len + 1 < s->size) {
		s->buf[s->len] = c;
	}
	s->len++;
}

static void sink_pad(struct sink *s, char c, int n)
{
	while (n-- > 0)
		sink_put(s, c);
}

/* One conversion's digits (reversed) and how to lay them out. */
static void put_number(struct sink *s, u64 v, bool neg, unsigned int base, bool upper,
                       const char *prefix, int width, bool zero, bool left)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, plen = (int)strlen(prefix) + neg, pad;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	pad = width - n - plen;
	if (!left && !zero)
		sink_pad(s, ' ', pad);
	if (neg)
		sink_put(s, '-');
	while (*prefix)
		sink_put(s, *prefix++);
	if (!left && zero)
		sink_pad(s, '0', pad);
	while (n)
		sink_put(s, tmp[--n]);
	if (left)
		sink_pad(s, ' ', pad);
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		bool zero = false, left = false;
		int width = 0, longs = 0;
		const char *str;
		int slen;
		u64 u;

		if (*fmt != '%') {
			sink_put(s, *fmt);
			continue;
		}
		for (fmt++; *fmt == '0' || *fmt == '-'; fmt++) {
			if (*fmt == '0')
				zero = true;
			else
				left = true;
		}
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + (*fmt - '0');
		for (; *fmt == 'l' || *fmt == 'z'; fmt++)
			longs = *fmt == 'z' ? 2 : longs + 1;

		switch (*fmt) {
		case 'd':
		case 'i': {
			long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);

			u = v < 0 ? -(u64)v : (u64)v;
			put_number(s, u, v < 0, 10, false, "", width, zero, left);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
			u = longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned int);
			put_number(s, u, false, *fmt == 'u' ? 10 : 16, *fmt == 'X', "", width, zero,
			           left);
			break;
		case 'p':
			u = (u64)(uintptr_t)va_arg(ap, void *);
			put_number(s, u, false, 16, false, "0x", width, zero, left);
			break;
		case 'c':
			sink_pad(s, ' ', left ? 0 : width - 1);
			sink_put(s, (char)va_arg(ap, int));
			sink_pad(s, ' ', left ? width - 1 : 0);
			break;
		case 's':
			str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			slen = (int)strlen(str);
			sink_pad(s, ' ', left ? 0 : width - slen);
			while (*str)
				sink_put(s, *str++);
			sink_pad(s, ' ', left ? width - slen : 0);
			break;
		case '%':
			sink_put(s, '%');
			break;
		default:
			/* Unknown conversion: show it rather than guess at the arguments. */
			sink_put(s, '%');
			if (!*fmt)
				return;
			sink_put(s, *fmt);
			break;
		}
	}
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = {.buf = buf, .size = size};

	format(&s, fmt, ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int vprintf(const char *fmt, va_list ap)
{
	struct sink s = {0};

	format(&s, fmt, ap);
	return (int)s.len;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}
