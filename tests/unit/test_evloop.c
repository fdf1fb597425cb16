/* test_evloop.c - unit tests for the VMM thread's epoll loop. */
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "test.h"
#include "util/evloop.h"

struct ctx {
	struct evloop *loop;
	int calls;
	int stop_after;
};

static void on_event(struct evloop_watch *w, uint32_t events)
{
	struct ctx *c = w->opaque;
	uint64_t v;

	CHECK(events & EPOLLIN);
	CHECK_EQ(read(w->fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	if (++c->calls >= c->stop_after)
		evloop_stop(c->loop);
}

static void on_self_delete(struct evloop_watch *w, uint32_t events)
{
	struct ctx *c = w->opaque;

	(void)events;
	c->calls++;
	CHECK_EQ(evloop_del(c->loop, w), 0);
	evloop_stop(c->loop);
}

TEST(dispatch_and_stop)
{
	struct evloop l;
	struct ctx c = {.loop = &l, .stop_after = 2};
	struct evloop_watch a, b;
	uint64_t one = 1;
	int fa = eventfd(0, EFD_NONBLOCK), fb = eventfd(0, EFD_NONBLOCK);

	CHECK_EQ(evloop_init(&l, NULL), 0);
	a = (struct evloop_watch){fa, on_event, &c};
	b = (struct evloop_watch){fb, on_event, &c};
	CHECK_EQ(evloop_add(&l, &a, EPOLLIN), 0);
	CHECK_EQ(evloop_add(&l, &b, EPOLLIN), 0);
	CHECK_EQ(evloop_add(&l, &b, EPOLLIN) < 0, 1); /* already watched */
	CHECK_EQ(write(fa, &one, 8), 8);
	CHECK_EQ(write(fb, &one, 8), 8);
	CHECK_EQ(evloop_run(&l), 0);
	CHECK_EQ(c.calls, 2);
	evloop_destroy(&l);
	close(fa);
	close(fb);
}

TEST(delete_from_callback)
{
	struct evloop l;
	struct ctx c = {.loop = &l};
	struct evloop_watch a;
	uint64_t one = 1;
	int fa = eventfd(0, EFD_NONBLOCK);

	CHECK_EQ(evloop_init(&l, NULL), 0);
	a = (struct evloop_watch){fa, on_self_delete, &c};
	CHECK_EQ(evloop_add(&l, &a, EPOLLIN), 0);
	CHECK_EQ(write(fa, &one, 8), 8);
	CHECK_EQ(evloop_run(&l), 0);
	CHECK_EQ(c.calls, 1);
	CHECK(evloop_del(&l, &a) < 0); /* already gone */
	evloop_destroy(&l);
	close(fa);
}

/* Both watches are ready in one batch; whichever runs first deletes and frees the other. */
struct pair_ctx {
	struct evloop *loop;
	struct evloop_watch *w[2];
	int calls;
};

static void on_kill_other(struct evloop_watch *w, uint32_t events)
{
	struct pair_ctx *c = w->opaque;
	struct evloop_watch *other = c->w[0] == w ? c->w[1] : c->w[0];
	uint64_t v;

	(void)events;
	c->calls++;
	CHECK_EQ(read(w->fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	CHECK_EQ(evloop_del(c->loop, other), 0);
	close(other->fd);
	free(other); /* ASan: a later call through it would be a use-after-free */
	c->w[c->w[0] == w ? 1 : 0] = NULL;
}

TEST(delete_and_free_another_ready_watch)
{
	struct evloop l;
	struct pair_ctx c = {.loop = &l};
	uint64_t one = 1;
	int i;

	CHECK_EQ(evloop_init(&l, NULL), 0);
	for (i = 0; i < 2; i++) {
		c.w[i] = malloc(sizeof(*c.w[i]));
		*c.w[i] = (struct evloop_watch){eventfd(0, EFD_NONBLOCK), on_kill_other, &c};
		CHECK_EQ(evloop_add(&l, c.w[i], EPOLLIN), 0);
		CHECK_EQ(write(c.w[i]->fd, &one, 8), 8);
	}
	CHECK_EQ(evloop_run_once(&l, 100), 2); /* both events came in one batch ... */
	CHECK_EQ(c.calls, 1);                  /* ... and only the first ran */
	for (i = 0; i < 2; i++)
		if (c.w[i]) {
			evloop_del(&l, c.w[i]);
			close(c.w[i]->fd);
			free(c.w[i]);
		}
	evloop_destroy(&l);
}

struct mod_ctx {
	int in_calls, out_calls;
	uint32_t last;
};

static void on_any(struct evloop_watch *w, uint32_t events)
{
	struct mod_ctx *c = w->opaque;

	c->last = events;
	if (events & EPOLLIN)
		c->in_calls++;
	if (events & EPOLLOUT)
		c->out_calls++;
}

TEST(mod_switches_events)
{
	struct evloop l;
	struct mod_ctx c = {0};
	struct evloop_watch a;
	int fa = eventfd(0, EFD_NONBLOCK);

	CHECK_EQ(evloop_init(&l, NULL), 0);
	a = (struct evloop_watch){fa, on_any, &c};
	/* An empty eventfd is writable, not readable. */
	CHECK_EQ(evloop_add(&l, &a, EPOLLIN), 0);
	CHECK_EQ(evloop_run_once(&l, 0), 0);
	CHECK_EQ(c.in_calls + c.out_calls, 0);
	CHECK_EQ(evloop_mod(&l, &a, EPOLLOUT), 0);
	CHECK_EQ(evloop_run_once(&l, 0), 1);
	CHECK_EQ(c.out_calls, 1);
	CHECK_EQ(c.in_calls, 0);
	CHECK_EQ(c.last, EPOLLOUT);
	CHECK_EQ(evloop_mod(&l, &a, EPOLLIN), 0);
	CHECK_EQ(evloop_run_once(&l, 0), 0);
	CHECK_EQ(c.out_calls, 1);
	CHECK_EQ(evloop_del(&l, &a), 0);
	CHECK(evloop_mod(&l, &a, EPOLLIN) < 0); /* no longer watched */
	evloop_destroy(&l);
	close(fa);
}

TEST(run_once_dispatches_one_batch)
{
	struct evloop l;
	struct mod_ctx c = {0};
	struct evloop_watch a, b;
	uint64_t one = 1;
	int fa = eventfd(0, EFD_NONBLOCK), fb = eventfd(0, EFD_NONBLOCK);

	CHECK_EQ(evloop_init(&l, NULL), 0);
	a = (struct evloop_watch){fa, on_any, &c};
	b = (struct evloop_watch){fb, on_any, &c};
	CHECK_EQ(evloop_add(&l, &a, EPOLLIN), 0);
	CHECK_EQ(evloop_add(&l, &b, EPOLLIN), 0);
	CHECK_EQ(evloop_run_once(&l, 10), 0); /* nothing ready: times out */
	CHECK_EQ(write(fa, &one, 8), 8);
	CHECK_EQ(write(fb, &one, 8), 8);
	CHECK_EQ(evloop_run_once(&l, -1), 2);
	CHECK_EQ(c.in_calls, 2);
	/* Level-triggered: still readable, dispatched again. */
	CHECK_EQ(evloop_run_once(&l, 0), 2);
	CHECK_EQ(c.in_calls, 4);
	evloop_destroy(&l);
	close(fa);
	close(fb);
}

int main(void)
{
	RUN(dispatch_and_stop);
	RUN(delete_from_callback);
	RUN(delete_and_free_another_ready_watch);
	RUN(mod_switches_events);
	RUN(run_once_dispatches_one_batch);
	return test_summary();
}
