/* vm_console.c - the stop request on the event loop, and the serial console on stdin/stdout. */
#include "vmm/vm_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

/* ---- step: VMM event loop, signals and console -------------------------------------------- */

static void on_stop_fd(struct evloop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t v;

	(void)events;
	if (read(vm->stop_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("stop eventfd read: %s", strerror(errno));
	evloop_stop(vm->loop);
}

/* Offer buffered console input to the UART; true when all of it was taken. */
static bool console_flush(struct vm *vm)
{
	size_t took;

	took = serial_input(&vm->serial, vm->rx_pending + vm->rx_pending_off,
	                    vm->rx_pending_len - vm->rx_pending_off);
	vm->rx_pending_off += took;
	if (vm->rx_pending_off < vm->rx_pending_len)
		return false;
	vm->rx_pending_off = vm->rx_pending_len = 0;
	return true;
}

static void on_stdin(struct evloop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	ssize_t n = 0;

	if (events & EPOLLIN)
		n = read(w->fd, vm->rx_pending, sizeof(vm->rx_pending));
	if (n > 0) {
		vm->rx_pending_len = (size_t)n;
		vm->rx_pending_off = 0;
		if (!console_flush(vm)) {
			/* The guest's FIFO is full: pause input until it drains (on_rx_drained). */
			evloop_del(vm->loop, w);
			vm->stdin_watched = false;
		}
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF, error or hang-up: stop listening, the guest keeps running. */
	evloop_del(vm->loop, w);
	vm->stdin_watched = false;
	vm->cfg.console_in_fd = -1;
}

static void on_rx_drained(struct evloop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t v;

	(void)events;
	if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (!console_flush(vm) || vm->stdin_watched || vm->cfg.console_in_fd < 0)
		return;
	if (evloop_add(vm->loop, &vm->stdin_watch, EPOLLIN) == 0)
		vm->stdin_watched = true;
}

void vm_undo_console(struct vm *vm)
{
	if (vm->termios_saved) {
		struct termios t;

		memcpy(&t, vm->saved_termios, sizeof(t));
		tcsetattr(vm->cfg.console_in_fd, TCSANOW, &t);
		vm->termios_saved = false;
	}
	if (vm->stdin_watched)
		evloop_del(vm->loop, &vm->stdin_watch);
	vm->stdin_watched = false;
	serial_set_rx_notify(&vm->serial, -1);
	if (vm->rx_notify_fd >= 0) {
		evloop_del(vm->loop, &vm->rx_watch);
		close(vm->rx_notify_fd);
	}
	vm->rx_notify_fd = -1;
}

void vm_undo_loop(struct vm *vm)
{
	if (vm->stop_watched)
		evloop_del(vm->loop, &vm->stop_watch);
	vm->stop_watched = false;
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	vm->stop_fd = -1;
}

static int console_raw(struct vm *vm)
{
	int fd = vm->cfg.console_in_fd;
	struct termios t;

	_Static_assert(sizeof(t) <= sizeof(vm->saved_termios), "termios buffer");
	if (fd < 0 || !isatty(fd) || tcgetattr(fd, &t) < 0)
		return 0;
	memcpy(vm->saved_termios, &t, sizeof(t));
	vm->termios_saved = true;
	/* Raw input for the guest console; ISIG stays on so Ctrl-C stops ember. */
	cfmakeraw(&t);
	t.c_lflag |= ISIG;
	t.c_oflag |= OPOST | ONLCR;
	return tcsetattr(fd, TCSANOW, &t) < 0 ? -errno : 0;
}

int vm_step_loop(struct vm *vm, struct err *e)
{
	int r;

	vm->loop = vm->cfg.loop;
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0)
		return err_sys(e, errno, "eventfd");
	vm->stop_watch = (struct evloop_watch){vm->stop_fd, on_stop_fd, vm};
	r = evloop_add(vm->loop, &vm->stop_watch, EPOLLIN);
	if (r < 0) {
		err_sys(e, -r, "epoll_ctl");
		vm_undo_loop(vm);
		return r;
	}
	vm->stop_watched = true;
	return 0;
}

int vm_step_console(struct vm *vm, struct err *e)
{
	int r;

	vm->rx_notify_fd = -1;
	if (vm->cfg.console_in_fd >= 0 && !vm->cfg.build_only) {
		vm->rx_notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vm->rx_notify_fd < 0) {
			r = err_sys(e, errno, "eventfd");
			goto fail;
		}
		vm->rx_watch = (struct evloop_watch){vm->rx_notify_fd, on_rx_drained, vm};
		r = evloop_add(vm->loop, &vm->rx_watch, EPOLLIN);
		if (r < 0) {
			err_sys(e, -r, "epoll_ctl");
			goto fail;
		}
		serial_set_rx_notify(&vm->serial, vm->rx_notify_fd);
		vm->stdin_watch = (struct evloop_watch){vm->cfg.console_in_fd, on_stdin, vm};
		/* Regular files and /dev/null cannot be polled (EPERM): no console input then. */
		if (evloop_add(vm->loop, &vm->stdin_watch, EPOLLIN) == 0)
			vm->stdin_watched = true;
		r = console_raw(vm);
		if (r < 0) {
			err_sys(e, -r, "cannot put the console in raw mode");
			goto fail;
		}
	}
	return 0;
fail:
	vm_undo_console(vm);
	return r;
}
