/* err.h - setup errors: a negative errno plus one human-readable message. */
#ifndef EMBER_UTIL_ERR_H
#define EMBER_UTIL_ERR_H

/*
 * Setup paths (config, loaders, KVM calls at build time) return -errno and
 * fill a `struct err` with the one message the user will see.  The first
 * message set wins, so an inner function's precise text is not overwritten by
 * a caller's vaguer one; callers may add context with err_prefix().
 */

struct err {
	int code;      /* negative errno, 0 when no error was set */
	char msg[512]; /* the user-facing text, no "ember:" prefix, no newline */
};

/* Record an error (if none is recorded yet) and return -errnum. */
int err_set(struct err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Same, appending ": strerror(errnum)" to the message. */
int err_sys(struct err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Put "<prefix>: " in front of the recorded message. */
void err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the record. */
void err_clear(struct err *e);

#endif
