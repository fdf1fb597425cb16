/* http.c - the API server's sockets: the listening Unix socket and its connections (see http.h). */
#include "api/http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/http_proto.h"

#define HTTP_ACCEPT_BATCH 16 /* connections accepted per wakeup, so the loop stays fair */

struct http_conn {
	struct http_server *s;
	unsigned int slot; /* index in s->conns */
	int fd;
	struct evloop_watch watch;
	uint32_t events; /* EPOLLIN, or EPOLLOUT alone while output is pending */
	bool eof;        /* the peer will send nothing more */
	struct http_proto *proto;
};

/* ---- setup ---- */

/*
 * Make `path` free for bind(): nothing there, or a socket file nobody listens
 * on any more (a server that died without unlinking it), which is removed.
 */
static int claim_path(const struct sockaddr_un *sa, const char *path, struct err *e)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_sys(e, errno, "API socket path %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return err_set(e, EEXIST, "API socket path %s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(e, errno, "API socket");
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? errno : 0;
	close(fd);
	/* EAGAIN: a listener whose backlog is full, so a live one. */
	if (r == 0 || r == EAGAIN)
		return err_set(e, EADDRINUSE, "API socket %s is in use by a running server", path);
	if (r == ENOENT)
		return 0; /* gone meanwhile */
	if (r != ECONNREFUSED)
		return err_sys(e, r, "API socket %s: cannot tell whether a server still uses it",
		               path);
	if (unlink(path) < 0 && errno != ENOENT)
		return err_sys(e, errno, "remove stale API socket %s", path);
	log_info("replaced stale API socket %s", path);
	return 0;
}

int http_server_init(struct http_server *s, const char *path, size_t max_payload,
                     http_handler handler, void *opaque, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	size_t len;
	int r;

	memset(s, 0, sizeof(*s));
	s->listen_fd = -1;
	/* A descriptor held in reserve: see listen_event(). */
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	s->max_payload = max_payload ? max_payload : HTTP_DEFAULT_MAX_PAYLOAD;
	s->handler = handler;
	s->opaque = opaque;
	if (!path || !*path)
		return err_set(e, EINVAL, "API socket path is empty");
	len = strlen(path);
	if (len >= sizeof(sa.sun_path) || len >= sizeof(s->path))
		return err_set(e, ENAMETOOLONG,
		               "API socket path %s is longer than the %zu bytes a Unix socket "
		               "address holds",
		               path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, len + 1);
	r = claim_path(&sa, path, e);
	if (r < 0)
		return r;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return err_sys(e, errno, "API socket");
	if (bind(s->listen_fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = err_sys(e, errno, "bind API socket %s", path);
		goto fail;
	}
	/* The file is ours from here: failure and destroy unlink it, and only it. */
	memcpy(s->path, path, len + 1);
	if (lstat(path, &st) < 0) {
		r = err_sys(e, errno, "API socket %s", path);
		goto fail;
	}
	s->path_dev = st.st_dev;
	s->path_ino = st.st_ino;
	/*
	 * Owner only.  bind() made the file under the umask, but until listen()
	 * every connect() is refused, so nobody gets in through a looser mode.
	 * (fchmod() on the socket would not reach the file; a umask() around
	 * bind() would race with other threads creating files.)
	 */
	if (chmod(path, 0600) < 0) {
		r = err_sys(e, errno, "chmod API socket %s", path);
		goto fail;
	}
	if (listen(s->listen_fd, HTTP_LISTEN_BACKLOG) < 0) {
		r = err_sys(e, errno, "listen on API socket %s", path);
		goto fail;
	}
	return 0;
fail:
	http_server_destroy(s);
	return r;
}

/* ---- connections ---- */

static void conn_close(struct http_conn *c)
{
	struct http_server *s = c->s;

	evloop_del(s->loop, &c->watch);
	close(c->fd);
	http_proto_free(c->proto);
	s->conns[c->slot] = NULL;
	free(c);
}

static int conn_watch(struct http_conn *c, uint32_t events)
{
	int r;

	if (c->events == events)
		return 0;
	r = evloop_mod(c->s->loop, &c->watch, events);
	if (r == 0)
		c->events = events;
	return r;
}

/* Send queued output: 0 when all is sent, 1 when the socket is full, -1 when the peer is gone. */
static int conn_flush(struct http_conn *c)
{
	for (;;) {
		size_t len;
		const char *out = http_proto_output(c->proto, &len);
		ssize_t n;

		if (!len)
			return 0;
		n = send(c->fd, out, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		}
		http_proto_sent(c->proto, (size_t)n);
	}
}

/*
 * Answer what is buffered, one request at a time: a response is sent before
 * the next request is parsed, and while one waits for the socket to drain the
 * connection waits for EPOLLOUT only, so nothing more is read meanwhile.
 */
static void conn_pump(struct http_conn *c)
{
	struct http_server *s = c->s;

	for (;;) {
		int r = conn_flush(c);

		if (r < 0) {
			conn_close(c);
			return;
		}
		/*
		 * Output pending, or the handler stopped the loop: wait for
		 * EPOLLOUT, which comes at once when the socket has room, so
		 * buffered requests are answered when the loop runs again.
		 */
		if (r > 0 || s->loop->stop) {
			if (conn_watch(c, EPOLLOUT) < 0)
				conn_close(c);
			return;
		}
		switch (http_proto_step(c->proto, s->handler, s->opaque)) {
		case HTTP_PROTO_ANSWERED:
			s->requests++;
			break;
		case HTTP_PROTO_REFUSED:
			s->bad_requests++;
			log_limited(&s->log_rl, LOG_WARN, "API request refused: %s",
			            http_proto_fault(c->proto));
			break;
		case HTTP_PROTO_CONTINUE:
			break;
		case HTTP_PROTO_NEED_INPUT:
			if (c->eof) {
				if (http_proto_mid_request(c->proto))
					log_limited(
					    &s->log_rl, LOG_DEBUG,
					    "API client hung up in the middle of a request");
				conn_close(c);
			} else if (conn_watch(c, EPOLLIN) < 0) {
				conn_close(c);
			}
			return;
		case HTTP_PROTO_CLOSED:
			conn_close(c);
			return;
		}
	}
}

static void conn_event(struct evloop_watch *w, uint32_t events)
{
	struct http_conn *c = w->opaque;

	if (events & EPOLLERR) {
		conn_close(c);
		return;
	}
	/* EPOLLHUP with EPOLLIN: read what is left; recv() then says 0 (end of input). */
	if ((c->events & EPOLLIN) && !c->eof && (events & (EPOLLIN | EPOLLHUP))) {
		size_t room;
		char *at = http_proto_space(c->proto, &room);
		ssize_t n;

		if (!room) { /* cannot happen while reading: nothing unparsed is left then */
			conn_close(c);
			return;
		}
		n = recv(c->fd, at, room, 0);
		if (n > 0) {
			http_proto_filled(c->proto, (size_t)n);
		} else if (n == 0) {
			c->eof = true;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			conn_close(c);
			return;
		}
	}
	conn_pump(c);
}

/* The server is full: tell the client so if its socket takes it at once, then close. */
static void refuse_conn(struct http_server *s, int fd)
{
	char head[256], *body = http_fault_body("Too many open API connections.");
	size_t blen = body ? strlen(body) : 0;
	struct iovec iov[2] = {
	    {.iov_base = head,
	     .iov_len = http_response_head(head, sizeof(head), 503, blen, "close")},
	    {.iov_base = body, .iov_len = blen},
	};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};

	if (iov[0].iov_len)
		(void)sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(body);
	close(fd);
	log_limited(&s->log_rl, LOG_WARN, "API socket %s: %u connections open; refused another",
	            s->path, HTTP_MAX_CONNS);
}

static void conn_open(struct http_server *s, int fd)
{
	struct http_conn *c;
	unsigned int i;

	for (i = 0; i < HTTP_MAX_CONNS && s->conns[i]; i++)
		;
	if (i == HTTP_MAX_CONNS) {
		refuse_conn(s, fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c)
		c->proto = http_proto_new(s->max_payload);
	if (!c || !c->proto) {
		log_limited(&s->log_rl, LOG_WARN, "API socket %s: out of memory for a connection",
		            s->path);
		goto fail;
	}
	c->s = s;
	c->slot = i;
	c->fd = fd;
	c->events = EPOLLIN;
	c->watch = (struct evloop_watch){.fd = fd, .cb = conn_event, .opaque = c};
	if (evloop_add(s->loop, &c->watch, EPOLLIN) < 0) {
		log_limited(&s->log_rl, LOG_WARN, "API socket %s: cannot watch a connection",
		            s->path);
		goto fail;
	}
	s->conns[i] = c;
	return;
fail:
	if (c)
		http_proto_free(c->proto);
	free(c);
	close(fd);
}

static void listen_event(struct evloop_watch *w, uint32_t events)
{
	struct http_server *s = w->opaque;
	int i;

	(void)events;
	for (i = 0; i < HTTP_ACCEPT_BATCH; i++) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
				/*
				 * Out of descriptors: the pending connection would keep the
				 * level-triggered listen socket ready forever.  Free the
				 * spare, take the connection and close it, keep the spare.
				 */
				close(s->spare_fd);
				fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				log_limited(
				    &s->log_rl, LOG_WARN,
				    "API socket %s: out of file descriptors: a connection was "
				    "refused",
				    s->path);
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_limited(&s->log_rl, LOG_WARN, "API socket %s: accept: %s",
				            s->path, strerror(errno));
			return;
		}
		conn_open(s, fd);
	}
}

int http_server_start(struct http_server *s, struct evloop *loop, struct err *e)
{
	int r;

	if (s->listen_fd < 0)
		return err_set(e, EBADF, "API server is not set up");
	if (s->loop)
		return err_set(e, EBUSY, "API server on %s is already started", s->path);
	s->listen_watch =
	    (struct evloop_watch){.fd = s->listen_fd, .cb = listen_event, .opaque = s};
	r = evloop_add(loop, &s->listen_watch, EPOLLIN);
	if (r < 0)
		return err_sys(e, -r, "watch API socket %s", s->path);
	s->loop = loop;
	return 0;
}

void http_server_destroy(struct http_server *s)
{
	struct stat st;
	unsigned int i;

	for (i = 0; i < HTTP_MAX_CONNS; i++)
		if (s->conns[i])
			conn_close(s->conns[i]);
	if (s->loop)
		evloop_del(s->loop, &s->listen_watch);
	s->loop = NULL;
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->listen_fd = -1;
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	s->spare_fd = -1;
	/* Unlink only the file this server made, not one a later server put in its place. */
	if (s->path[0] && lstat(s->path, &st) == 0 && st.st_dev == s->path_dev &&
	    st.st_ino == s->path_ino)
		unlink(s->path);
	s->path[0] = '\0';
}
