#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "server.h"
#include "worker.h"

/* Requests handed to evhttp but not yet read by it, per connection: a
 * client pipelining this much without reading answers is cut off. */
#define PIPELINE_MAX_BYTES (1u << 20)

/* A connection's state is spread over flags rather than one enum because
 * its parts run independently: reading the next request (scan), requests
 * evhttp is answering (in_flight), bytes waiting for the socket. */
struct conn {
	struct worker *w;		  /* borrowed: the owning worker */
	const struct conn_limits *limits; /* borrowed from the server */
	struct bufferevent *bev;	  /* the filter evhttp owns and frees */
	struct bufferevent *under;	  /* the socket bufferevent below it */
	struct conn *prev, *next;	  /* w->conns */
	evutil_socket_t fd;		  /* -1 until evhttp has set it */
	struct event io;		  /* flush now, or when the socket is writable */
	struct event timer;		  /* the next deadline */
	bool flush_pending;		  /* io is active or waiting */
	bool write_blocked;		  /* the socket refused bytes */
	bool closing;			  /* refused or closing: further input is dropped */
	bool dead;			  /* the peer is gone: close at the next turn */
	bool gone;			  /* evhttp freed the connection */
	bool over_limit;		  /* accepted past max_connections */
	bool has_closecb;
	struct reqscan scan;
	size_t scanned;	    /* bytes at the front of the input fed to scan */
	unsigned in_flight; /* requests dispatched, not yet answered */
	int refusal_status;
	const char *refusal_reason;
	int64_t request_start_ms; /* first byte of the request being received; 0 none */
	int64_t activity_ms;	  /* last answer or write progress */
	int64_t write_block_ms;	  /* when writing last stalled */
};

static char token[33];
/* The connection whose io callback is flushing: only then does the output
 * filter write (see conn_output). */
static __thread struct conn *tls_flushing;

bool conn_setup(void)
{
	unsigned char raw[16];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return false;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	return true;
}

const char *conn_token(void)
{
	return token;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_refusal(struct conn *c, const char *reason)
{
	struct metric *m = metric_get(c->w->meters->refusals, (const char *const[]){reason}, 1);
	metric_inc(m);
}

/* Has evhttp let go of the bufferevent (freed, awaiting finalization)? */
static bool bev_released(const struct conn *c)
{
	bufferevent_event_cb eventcb = NULL;
	bufferevent_getcb(c->bev, NULL, NULL, &eventcb, NULL);
	return c->gone || eventcb == NULL;
}

static bool output_empty(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

static bool is_idle(const struct conn *c)
{
	return c->in_flight == 0 && output_empty(c) && !reqscan_in_request(&c->scan) && !c->closing;
}

/* Set the timer to the next deadline that applies. */
static void arm(struct conn *c)
{
	if (c->gone)
		return;
	int64_t now = now_ms(), deadline = -1;
	if (c->dead)
		deadline = now;
	else if (c->write_blocked)
		deadline = c->write_block_ms + c->limits->send_timeout_ms;
	else if (c->request_start_ms)
		deadline = c->request_start_ms + c->limits->header_timeout_ms;
	else if (is_idle(c))
		deadline = c->w->draining ? now : c->activity_ms + c->limits->keepalive_timeout_ms;
	if (deadline < 0) {
		evtimer_del(&c->timer);
		return;
	}
	int64_t wait = deadline > now ? deadline - now : 0;
	struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
	evtimer_add(&c->timer, &tv);
}

/* Make evhttp drop the connection, as if the client had closed it. */
static void close_now(struct conn *c)
{
	c->closing = true;
	c->gone = true;
	evtimer_del(&c->timer);
	event_del(&c->io);
	bufferevent_trigger_event(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

/* Stand a refused request by a synthetic one routes.c answers with the
 * status, then the connection closes. */
static void inject_refusal(struct conn *c, struct evbuffer *dst, int status, const char *reason,
			   const char *metric_reason)
{
	c->refusal_status = status;
	c->refusal_reason = reason;
	c->closing = true;
	c->request_start_ms = 0;
	evbuffer_add_printf(dst,
			    "GET " CONN_REFUSAL_PATH " HTTP/1.1\r\n" CONN_TOKEN_HEADER
			    ": %s\r\nConnection: close\r\n\r\n",
			    token);
	count_refusal(c, metric_reason);
}

static void schedule_flush(struct conn *c)
{
	if (!c->flush_pending && c->fd >= 0 && !c->gone) {
		c->flush_pending = true;
		event_active(&c->io, EV_WRITE, 1);
	}
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	c->flush_pending = false;
	if (bev_released(c))
		return;
	tls_flushing = c;
	bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
	tls_flushing = NULL;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (bev_released(c))
		return;
	int64_t now = now_ms();
	if (c->dead) {
		close_now(c);
	} else if (c->write_blocked && now - c->write_block_ms >= c->limits->send_timeout_ms) {
		count_refusal(c, "send_timeout");
		close_now(c);
	} else if (c->request_start_ms &&
		   now - c->request_start_ms >= c->limits->header_timeout_ms) {
		count_refusal(c, "request_timeout");
		if (c->in_flight == 0 && output_empty(c) && !c->closing) {
			/* evhttp waits for a request line: answer 408 through it */
			struct evbuffer *src = bufferevent_get_input(c->under);
			evbuffer_drain(src, evbuffer_get_length(src));
			c->scanned = 0;
			reqscan_init(&c->scan, &c->limits->scan);
			inject_refusal(c, bufferevent_get_input(c->bev), 408,
				       "request not received in time", "request_timeout_408");
			bufferevent_trigger(c->bev, EV_READ, 0);
			if (!c->gone)
				arm(c);
		} else {
			close_now(c);
		}
	} else if (is_idle(c) &&
		   (c->w->draining || now - c->activity_ms >= c->limits->keepalive_timeout_ms)) {
		close_now(c);
	} else {
		arm(c);
	}
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;
	c->gone = true;
	evtimer_del(&c->timer);
	event_del(&c->io);
}

/* The first time the filter runs, evhttp has given the socket its fd. */
static void bind_fd(struct conn *c)
{
	if (c->fd >= 0)
		return;
	c->fd = bufferevent_getfd(c->under);
	event_assign(&c->io, c->w->base, c->fd, EV_WRITE, on_io, c);
	struct worker *w = c->w;
	if ((size_t)c->fd >= w->by_fd_cap) {
		size_t cap = w->by_fd_cap ? w->by_fd_cap : 1024;
		while (cap <= (size_t)c->fd)
			cap *= 2;
		struct conn **grown = realloc(w->by_fd, cap * sizeof(*grown));
		if (!grown)
			return; /* conn_of will not find it: its requests go untracked */
		memset(grown + w->by_fd_cap, 0, (cap - w->by_fd_cap) * sizeof(*grown));
		w->by_fd = grown;
		w->by_fd_cap = cap;
	}
	w->by_fd[c->fd] = c;
}

static enum bufferevent_filter_result conn_input(struct evbuffer *src, struct evbuffer *dst,
						 ev_ssize_t limit, enum bufferevent_flush_mode mode,
						 void *arg)
{
	struct conn *c = arg;
	bind_fd(c);
	if (c->gone || c->closing) {
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_NEED_MORE;
	}
	if (c->over_limit) {
		evbuffer_drain(src, evbuffer_get_length(src));
		inject_refusal(c, dst, 503, "too many connections", "connection_limit");
		return BEV_OK;
	}
	bool handed = false;
	for (;;) {
		size_t total = evbuffer_get_length(src);
		if (c->scanned >= total)
			break;
		struct evbuffer_ptr pos;
		evbuffer_ptr_set(src, &pos, c->scanned, EVBUFFER_PTR_SET);
		enum reqscan_status st = REQSCAN_MORE;
		size_t end = c->scanned;
		while (end < total) {
			struct evbuffer_iovec v;
			if (evbuffer_peek(src, -1, &pos, &v, 1) < 1 || v.iov_len == 0)
				break;
			size_t used = 0;
			st = reqscan_feed(&c->scan, v.iov_base, v.iov_len, &used);
			end += used;
			if (st != REQSCAN_MORE)
				break;
			evbuffer_ptr_set(src, &pos, used, EVBUFFER_PTR_ADD);
		}
		if (st == REQSCAN_REFUSE) {
			const char *reason;
			int status = reqscan_refusal(&c->scan, &reason);
			evbuffer_drain(src, evbuffer_get_length(src));
			c->scanned = 0;
			char metric_reason[16];
			snprintf(metric_reason, sizeof(metric_reason), "status_%d", status);
			inject_refusal(c, dst, status, reason, metric_reason);
			handed = true;
			break;
		}
		if (st == REQSCAN_DONE) {
			size_t skip = reqscan_skip(&c->scan);
			evbuffer_drain(src, skip);
			evbuffer_remove_buffer(src, dst, end - skip);
			c->scanned = 0;
			c->request_start_ms = 0;
			handed = true;
			if (evbuffer_get_length(dst) > PIPELINE_MAX_BYTES) {
				count_refusal(c, "pipeline_limit");
				c->dead = true;
				break;
			}
			continue;
		}
		c->scanned = end;
		break;
	}
	if (reqscan_in_request(&c->scan) && c->request_start_ms == 0)
		c->request_start_ms = now_ms();
	arm(c);
	return handed ? BEV_OK : BEV_NEED_MORE;
}

static enum bufferevent_filter_result conn_output(struct evbuffer *src, struct evbuffer *dst,
						  ev_ssize_t limit,
						  enum bufferevent_flush_mode mode, void *arg)
{
	struct conn *c = arg;
	if (tls_flushing != c) {
		/* evhttp is mid-call (it registers its completion callback only
		 * after queueing the bytes): write from a clean stack instead */
		schedule_flush(c);
		return BEV_NEED_MORE;
	}
	while (evbuffer_get_length(src) > 0) {
		int n = evbuffer_write(src, c->fd);
		if (n > 0) {
			c->write_blocked = false;
			c->activity_ms = now_ms();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->write_blocked) {
				c->write_blocked = true;
				c->write_block_ms = now_ms();
			}
			c->flush_pending = true;
			event_add(&c->io, NULL);
			arm(c);
			return BEV_NEED_MORE;
		}
		/* the peer is gone: drop the answer and close */
		evbuffer_drain(src, evbuffer_get_length(src));
		c->dead = true;
		arm(c);
		return BEV_ERROR;
	}
	c->write_blocked = false;
	arm(c);
	return BEV_OK;
}

static void on_output_added(struct evbuffer *buffer, const struct evbuffer_cb_info *info, void *arg)
{
	if (info->n_added)
		schedule_flush(arg);
}

static void conn_free(void *arg)
{
	struct conn *c = arg;
	struct worker *w = c->w;
	event_del(&c->io);
	evtimer_del(&c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->fd >= 0 && (size_t)c->fd < w->by_fd_cap && w->by_fd[c->fd] == c)
		w->by_fd[c->fd] = NULL;
	w->nconns--;
	atomic_fetch_sub(c->limits->open_connections, 1);
	metric_add(w->meters->connections, -1);
	free(c);
}

struct bufferevent *conn_new_bev(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	const struct conn_limits *limits = server_conn_limits(w->server);
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->w = w;
	c->limits = limits;
	c->fd = -1;
	c->activity_ms = now_ms();
	reqscan_init(&c->scan, &limits->scan);
	evtimer_assign(&c->timer, base, on_timer, c);
	event_assign(&c->io, base, -1, EV_WRITE, on_io, c); /* re-assigned with the fd */
	c->under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->under) {
		free(c);
		return NULL;
	}
	c->bev = bufferevent_filter_new(c->under, conn_input, conn_output, BEV_OPT_CLOSE_ON_FREE,
					conn_free, c);
	if (!c->bev) {
		bufferevent_free(c->under);
		free(c);
		return NULL;
	}
	evbuffer_add_cb(bufferevent_get_output(c->bev), on_output_added, c);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	unsigned open = atomic_fetch_add(limits->open_connections, 1) + 1;
	c->over_limit = open > limits->max_connections;
	metric_add(w->meters->connections, 1);
	metric_inc(w->meters->connections_total);
	arm(c);
	return c->bev;
}

struct conn *conn_of(struct worker *w, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (!evcon)
		return NULL;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct bufferevent *under = bev ? bufferevent_get_underlying(bev) : NULL;
	evutil_socket_t fd = under ? bufferevent_getfd(under) : -1;
	if (fd < 0 || (size_t)fd >= w->by_fd_cap)
		return NULL;
	struct conn *c = w->by_fd[fd];
	if (!c || c->bev != bev || c->gone)
		return NULL;
	if (!c->has_closecb) {
		evhttp_connection_set_closecb(evcon, on_close, c);
		c->has_closecb = true;
	}
	return c;
}

void conn_request_begin(struct conn *c)
{
	if (!c)
		return;
	c->in_flight++;
	arm(c);
}

void conn_request_end(struct conn *c)
{
	if (!c)
		return;
	if (c->in_flight > 0)
		c->in_flight--;
	c->activity_ms = now_ms();
	arm(c);
}

bool conn_refusal(const struct conn *c, int *status, const char **reason)
{
	if (!c || !c->refusal_status)
		return false;
	*status = c->refusal_status;
	*reason = c->refusal_reason;
	return true;
}

void conn_drain(struct worker *w)
{
	struct conn *next;
	for (struct conn *c = w->conns; c; c = next) {
		next = c->next;
		if (c->gone)
			continue;
		if (is_idle(c) && !bev_released(c))
			close_now(c);
		else
			arm(c);
	}
}
