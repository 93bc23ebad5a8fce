#include "aredis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rbound.h"
#include "rds.h"

#define AREDIS_MAX_SCRIPTS 16

/* The connection's life. */
enum conn_state {
	CONN_IDLE,	 /* not started */
	CONN_RESOLVING,	 /* evdns lookup of the host in flight */
	CONN_CONNECTING, /* hiredis context created, TCP connect in flight */
	CONN_HANDSHAKE,	 /* AUTH/SELECT/SCRIPT LOAD sent, replies awaited */
	CONN_READY,	 /* commands may be sent */
	CONN_BACKOFF,	 /* waiting before the next attempt */
};

struct script {
	const char *text; /* borrowed, static */
	char sha[41];
};

/* A command between aredis_send and its reply. */
struct pending {
	struct aredis *r; /* borrowed */
	aredis_reply_fn fn;
	void *arg;
};

struct aredis {
	struct event_base *base; /* borrowed */
	struct aredis_opts opts;
	char *url; /* owned copy of opts.url */
	struct rds_url parsed;
	char described[300];
	struct aredis_events events;
	void *ctx;
	enum conn_state state;
	redisAsyncContext *ac;	 /* owned while CONNECTING..READY; hiredis frees it on errors */
	struct event *rev, *wev; /* owned while ac is: the adapter's events */
	struct event *timer;	 /* owned: connect timeout, backoff, io timeout checks */
	struct event *drop_ev;	 /* owned: a drop requested from inside a hiredis callback */
	struct evdns_base *dns;	 /* owned, made on first need */
	struct evdns_getaddrinfo_request *lookup; /* in flight while RESOLVING */
	struct rbound bound;
	struct script scripts[AREDIS_MAX_SCRIPTS];
	int nscripts;
	int handshake_left; /* replies the handshake still waits for */
	size_t inflight;
	int64_t progress_ms; /* last reply, or the send that made inflight 1 */
	int64_t attempt_started_ms;
	int failures; /* consecutive failed attempts */
	bool closing; /* the context is doomed: send nothing more */
	bool freeing; /* inside aredis_free */
	uint64_t connects;
	uint64_t rng;
	char drop_why[256];
	struct buf scratch; /* owned: one command formatted by aredis_send(v) */
};

static void arm(struct aredis *r, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(r->timer, &tv);
}

static int backoff_ms(struct aredis *r)
{
	long long delay = r->opts.backoff_first_ms > 0 ? r->opts.backoff_first_ms : 100;
	for (int i = 1; i < r->failures && delay < r->opts.backoff_max_ms; i++)
		delay *= 2;
	if (delay > r->opts.backoff_max_ms)
		delay = r->opts.backoff_max_ms;
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	long long half = delay / 2;
	return (int)(delay - half + (half > 0 ? (long long)(r->rng % (uint64_t)(half + 1)) : 0));
}

/* ---- the libevent adapter ---- */

static void drop(struct aredis *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct aredis *r = arg;
	redisAsyncContext *ac = r->ac;
	if (!ac)
		return;
	redisAsyncHandleRead(ac);
	/* the read may have lost the connection (r->ac cleared) */
	if (r->ac == ac && !rbound_pending_ok(ac->c.reader, &r->bound))
		drop(r, "%s", r->bound.why);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct aredis *r = arg;
	if (r->ac)
		redisAsyncHandleWrite(r->ac);
}

static void ev_add_read(void *data)
{
	struct aredis *r = data;
	event_add(r->rev, NULL);
}

static void ev_del_read(void *data)
{
	struct aredis *r = data;
	event_del(r->rev);
}

static void ev_add_write(void *data)
{
	struct aredis *r = data;
	event_add(r->wev, NULL);
}

static void ev_del_write(void *data)
{
	struct aredis *r = data;
	event_del(r->wev);
}

/* hiredis frees the context: the events go with it. May run inside
 * on_readable: libevent allows freeing the running event. */
static void ev_cleanup(void *data)
{
	struct aredis *r = data;
	if (r->rev)
		event_free(r->rev);
	if (r->wev)
		event_free(r->wev);
	r->rev = r->wev = NULL;
}

static bool attach(struct aredis *r, redisAsyncContext *ac)
{
	r->rev = event_new(r->base, ac->c.fd, EV_READ, on_readable, r);
	r->wev = event_new(r->base, ac->c.fd, EV_WRITE, on_writable, r);
	if (!r->rev || !r->wev) {
		ev_cleanup(r);
		return false;
	}
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	ac->ev.data = r;
	event_add(r->rev, NULL);
	event_add(r->wev, NULL);
	return true;
}

/* ---- connection state ---- */

static void start_attempt(struct aredis *r);

/* The context is gone (hiredis freed it, or we did): count the failure,
 * tell the owner if it was ready, wait, try again. Logs the decision. */
static void lost(struct aredis *r, const char *why)
{
	bool was_ready = r->state == CONN_READY;
	r->ac = NULL;
	r->inflight = 0;
	r->closing = false;
	if (r->freeing)
		return;
	r->failures++;
	int delay = backoff_ms(r);
	r->state = CONN_BACKOFF;
	evtimer_del(r->timer);
	arm(r, delay);
	if (was_ready)
		log_warn("redis %s: connection lost: %s; reconnecting", r->described, why);
	else if (r->failures == 1 || r->failures % 20 == 0)
		log_warn("redis %s: cannot connect (attempt %d): %s; retrying in %d ms",
			 r->described, r->failures, why, delay);
	else
		log_debug("redis %s: attempt %d failed: %s", r->described, r->failures, why);
	if (was_ready && r->events.on_down)
		r->events.on_down(r->ctx, why);
}

/* Drop the connection from outside hiredis' callbacks. */
static void drop(struct aredis *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->drop_why, sizeof(r->drop_why), fmt, ap);
	va_end(ap);
	if (r->state == CONN_RESOLVING) {
		if (r->lookup)
			evdns_getaddrinfo_cancel(r->lookup);
		r->lookup = NULL;
		lost(r, r->drop_why);
		return;
	}
	redisAsyncContext *ac = r->ac;
	if (!ac)
		return;
	/* pending callbacks run with NULL; on_disconnect runs when it was
	 * connected and calls lost() */
	r->closing = true;
	redisAsyncFree(ac);
	if (r->ac == ac)
		lost(r, r->drop_why);
}

static void on_drop_event(evutil_socket_t fd, short what, void *arg)
{
	struct aredis *r = arg;
	char why[sizeof(r->drop_why)];
	snprintf(why, sizeof(why), "%s", r->drop_why);
	if (r->ac)
		drop(r, "%s", why);
}

/* Inside a hiredis callback: drop at the next loop pass. */
static void drop_later(struct aredis *r, const char *why)
{
	if (!r->closing)
		snprintf(r->drop_why, sizeof(r->drop_why), "%.200s", why);
	r->closing = true;
	event_active(r->drop_ev, EV_TIMEOUT, 0);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct aredis *r = ac->data;
	if (!r || r->ac != ac)
		return;
	char why[256];
	if (r->drop_why[0])
		snprintf(why, sizeof(why), "%s", r->drop_why);
	else if (r->bound.why[0])
		snprintf(why, sizeof(why), "%s", r->bound.why);
	else
		snprintf(why, sizeof(why), "%s", ac->err ? ac->errstr : "closed");
	lost(r, why);
}

static void ready(struct aredis *r)
{
	r->state = CONN_READY;
	r->connects++;
	if (r->failures > 0)
		log_info("redis %s: connected after %d failed attempts", r->described, r->failures);
	else
		log_info("redis %s: connected", r->described);
	r->failures = 0;
	evtimer_del(r->timer);
	arm(r, 1000); /* io timeout checks */
	if (r->events.on_ready)
		r->events.on_ready(r->ctx);
}

static void on_handshake_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct aredis *r = ac->data;
	redisReply *reply = reply_;
	int script = (int)(intptr_t)privdata - 1; /* -1: AUTH or SELECT */
	if (!r || r->state != CONN_HANDSHAKE || r->closing || !reply)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		char why[300];
		snprintf(why, sizeof(why), "handshake: %.200s", reply->str);
		drop_later(r, why);
		return;
	}
	if (script >= 0 && script < r->nscripts) {
		if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
			drop_later(r, "handshake: SCRIPT LOAD answered no SHA1");
			return;
		}
		memcpy(r->scripts[script].sha, reply->str, 40);
		r->scripts[script].sha[40] = '\0';
	}
	r->inflight--;
	if (--r->handshake_left == 0)
		ready(r);
}

static bool handshake_send(struct aredis *r, int script, int argc, const char **argv)
{
	if (redisAsyncCommandArgv(r->ac, on_handshake_reply, (void *)(intptr_t)(script + 1), argc,
				  argv, NULL) != REDIS_OK)
		return false;
	r->handshake_left++;
	r->inflight++;
	return true;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
	struct aredis *r = cac->data;
	if (!r || r->ac != cac)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback, without
		 * on_disconnect */
		lost(r, cac->errstr[0] ? cac->errstr : "connect failed");
		return;
	}
	redisAsyncContext *ac = r->ac;
	r->state = CONN_HANDSHAKE;
	r->handshake_left = 0;
	r->progress_ms = monotonic_ms();
	bool ok = true;
	char db[16];
	snprintf(db, sizeof(db), "%d", r->parsed.db);
	if (r->parsed.has_password && r->parsed.user[0])
		ok = handshake_send(r, -1, 3,
				    (const char *[]){"AUTH", r->parsed.user, r->parsed.password});
	else if (r->parsed.has_password)
		ok = handshake_send(r, -1, 2, (const char *[]){"AUTH", r->parsed.password});
	if (ok && r->parsed.db != 0)
		ok = handshake_send(r, -1, 2, (const char *[]){"SELECT", db});
	for (int i = 0; ok && i < r->nscripts; i++)
		ok = handshake_send(r, i, 3,
				    (const char *[]){"SCRIPT", "LOAD", r->scripts[i].text});
	if (ok && r->handshake_left == 0)
		ok = handshake_send(r, -1, 1, (const char *[]){"PING"});
	if (!ok)
		drop_later(r, "handshake: could not queue commands");
	(void)ac;
}

static void connect_to(struct aredis *r, const char *ip)
{
	redisAsyncContext *ac = r->parsed.is_unix ? redisAsyncConnectUnix(r->parsed.path)
						  : redisAsyncConnect(ip, r->parsed.port);
	if (!ac) {
		lost(r, "out of memory");
		return;
	}
	if (ac->err) {
		char why[200];
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		lost(r, why);
		return;
	}
	rbound_init(&r->bound);
	ac->data = r;
	r->ac = ac;
	r->state = CONN_CONNECTING;
	r->drop_why[0] = '\0';
	if (!rbound_install(ac->c.reader, &r->bound) || !attach(r, ac)) {
		ac->data = NULL;
		r->ac = NULL;
		redisAsyncFree(ac);
		lost(r, "could not set up the connection");
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct aredis *r = arg;
	if (result == EVUTIL_EAI_CANCEL)
		return;
	r->lookup = NULL;
	if (r->state != CONN_RESOLVING) {
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	char ip[INET6_ADDRSTRLEN] = "";
	if (result == 0 && res) {
		const void *addr =
			res->ai_family == AF_INET6
				? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
				: (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
		evutil_inet_ntop(res->ai_family, addr, ip, sizeof(ip));
	}
	if (res)
		evutil_freeaddrinfo(res);
	if (!ip[0]) {
		char why[200];
		snprintf(why, sizeof(why), "cannot resolve %.100s: %s", r->parsed.host,
			 result ? evutil_gai_strerror(result) : "no address");
		lost(r, why);
		return;
	}
	connect_to(r, ip);
}

static bool is_numeric_host(const char *host)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static void start_attempt(struct aredis *r)
{
	r->attempt_started_ms = monotonic_ms();
	evtimer_del(r->timer);
	arm(r, r->opts.connect_timeout_ms);
	if (r->parsed.is_unix || is_numeric_host(r->parsed.host)) {
		connect_to(r, r->parsed.host);
		return;
	}
	if (!r->dns && !(r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS))) {
		lost(r, "cannot set up the DNS resolver");
		return;
	}
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	r->state = CONN_RESOLVING;
	r->lookup = evdns_getaddrinfo(r->dns, r->parsed.host, NULL, &hints, on_resolved, r);
}

/* One timer, by state: connect timeout, backoff end, io timeout check. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct aredis *r = arg;
	switch (r->state) {
	case CONN_IDLE: break;
	case CONN_BACKOFF: start_attempt(r); break;
	case CONN_RESOLVING:
	case CONN_CONNECTING:
	case CONN_HANDSHAKE: drop(r, "no answer within %d ms", r->opts.connect_timeout_ms); break;
	case CONN_READY:
		if (r->inflight > 0 && monotonic_ms() - r->progress_ms > r->opts.io_timeout_ms)
			drop(r, "no reply within %d ms", r->opts.io_timeout_ms);
		else
			arm(r, 1000);
		break;
	default: abort();
	}
}

/* ---- public ---- */

struct aredis *aredis_new(struct event_base *base, const struct aredis_opts *opts,
			  const struct aredis_events *events, void *ctx, char *err, size_t errlen)
{
	struct aredis *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	r->opts = *opts;
	r->events = *events;
	r->ctx = ctx;
	r->url = strdup(opts->url ? opts->url : "");
	r->opts.url = r->url;
	if (r->opts.connect_timeout_ms <= 0)
		r->opts.connect_timeout_ms = 5000;
	if (r->opts.io_timeout_ms <= 0)
		r->opts.io_timeout_ms = 10000;
	if (r->opts.backoff_max_ms < r->opts.backoff_first_ms)
		r->opts.backoff_max_ms = r->opts.backoff_first_ms;
	buf_init(&r->scratch);
	r->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^ (uint64_t)(uintptr_t)r;
	if (!r->rng)
		r->rng = 1;
	if (!r->url || !rds_url_parse(r->url, &r->parsed, err, errlen))
		goto fail;
	rds_url_describe(&r->parsed, r->described, sizeof(r->described));
	r->timer = evtimer_new(base, on_timer, r);
	r->drop_ev = event_new(base, -1, 0, on_drop_event, r);
	if (!r->timer || !r->drop_ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return r;
fail:
	aredis_free(r);
	return NULL;
}

void aredis_free(struct aredis *r)
{
	if (!r)
		return;
	r->events.on_down = NULL;
	r->freeing = true;
	if (r->lookup)
		evdns_getaddrinfo_cancel(r->lookup);
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->state = CONN_IDLE;
		redisAsyncFree(ac); /* pending callbacks get NULL */
	}
	r->ac = NULL;
	if (r->dns)
		evdns_base_free(r->dns, 0);
	if (r->timer)
		event_free(r->timer);
	if (r->drop_ev)
		event_free(r->drop_ev);
	buf_free(&r->scratch);
	free(r->url);
	free(r);
}

int aredis_script(struct aredis *r, const char *text)
{
	if (r->nscripts == AREDIS_MAX_SCRIPTS)
		return -1;
	r->scripts[r->nscripts].text = text;
	r->scripts[r->nscripts].sha[0] = '\0';
	return r->nscripts++;
}

const char *aredis_script_sha(const struct aredis *r, int id)
{
	return id >= 0 && id < r->nscripts ? r->scripts[id].sha : "";
}

void aredis_start(struct aredis *r)
{
	if (r->state == CONN_IDLE)
		start_attempt(r);
}

bool aredis_is_ready(const struct aredis *r)
{
	return r->state == CONN_READY && !r->closing;
}

size_t aredis_inflight(const struct aredis *r)
{
	return r->inflight;
}

uint64_t aredis_connects(const struct aredis *r)
{
	return r->connects;
}

const char *aredis_describe(const struct aredis *r)
{
	return r->described;
}

/* ---- commands ---- */

/* A reply arrived (reply NULL: the context is being freed). */
static void count_reply(struct aredis *r, const redisReply *reply)
{
	if (reply) {
		if (r->inflight > 0)
			r->inflight--;
		r->progress_ms = monotonic_ms();
		if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0)
			drop_later(r, "the script cache was flushed (NOSCRIPT): reloading");
	} else {
		/* nothing may be sent from here */
		r->closing = true;
	}
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct pending *p = privdata;
	count_reply(p->r, reply_);
	p->fn(p->arg, reply_);
	free(p);
}

/* The reply of a pipeline's command before its last: privdata is r. */
static void on_pipe_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	count_reply(privdata, reply_);
}

static void resp_header(struct buf *b, char kind, size_t n)
{
	buf_putc(b, kind);
	buf_put_uint(b, n);
	buf_append(b, "\r\n", 2);
}

static void resp_arg(struct buf *b, const char *arg, size_t len)
{
	resp_header(b, '$', len);
	buf_append(b, arg, len);
	buf_append(b, "\r\n", 2);
}

/* One command as RESP at the end of b; lens NULL: NUL-terminated. */
static void resp_command(struct buf *b, int argc, const char *const *argv, const size_t *lens)
{
	resp_header(b, '*', (size_t)argc);
	for (int i = 0; i < argc; i++)
		resp_arg(b, argv[i], lens ? lens[i] : strlen(argv[i]));
}

static void resp_rcmd(struct buf *b, const struct rcmd *c)
{
	resp_header(b, '*', (size_t)c->argc);
	for (int i = 0; i < c->argc; i++)
		resp_arg(b, c->text.data + c->offs[i], c->lens[i]);
}

/* Queue one formatted command; fn NULL: a pipeline's reply, only counted. */
static bool send_formatted(struct aredis *r, const char *cmd, size_t len, aredis_reply_fn fn,
			   void *arg)
{
	struct pending *p = NULL;
	if (fn) {
		if (!(p = malloc(sizeof(*p))))
			return false;
		*p = (struct pending){r, fn, arg};
	}
	if (redisAsyncFormattedCommand(r->ac, p ? on_reply : on_pipe_reply, p ? (void *)p : r, cmd,
				       len) != REDIS_OK) {
		free(p);
		return false;
	}
	if (r->inflight++ == 0)
		r->progress_ms = monotonic_ms();
	return true;
}

/* Send what r->scratch holds. */
static bool send_scratch(struct aredis *r, aredis_reply_fn fn, void *arg)
{
	bool ok = buf_ok(&r->scratch) &&
		  send_formatted(r, r->scratch.data, r->scratch.len, fn, arg);
	buf_reset(&r->scratch);
	return ok;
}

bool aredis_send(struct aredis *r, struct rcmd *c, aredis_reply_fn fn, void *arg)
{
	if (!aredis_is_ready(r) || c->failed || c->argc == 0 || !buf_ok(&c->text))
		return false;
	resp_rcmd(&r->scratch, c);
	return send_scratch(r, fn, arg);
}

bool aredis_sendv(struct aredis *r, aredis_reply_fn fn, void *arg, int argc, const char **argv)
{
	if (!aredis_is_ready(r) || argc <= 0)
		return false;
	resp_command(&r->scratch, argc, argv, NULL);
	return send_scratch(r, fn, arg);
}

bool aredis_send_pipe(struct aredis *r, const struct rpipe *p, aredis_reply_fn fn, void *arg)
{
	if (!aredis_is_ready(r) || p->failed || p->count == 0 || !buf_ok(&p->text))
		return false;
	size_t from = 0;
	for (int i = 0; i < p->count; i++) {
		bool last = i == p->count - 1;
		if (!send_formatted(r, p->text.data + from, p->ends[i] - from, last ? fn : NULL,
				    arg)) {
			if (i > 0)
				drop_later(r, "a pipeline could not be queued whole");
			return false;
		}
		from = p->ends[i];
	}
	return true;
}

void rpipe_init(struct rpipe *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->text);
}

void rpipe_free(struct rpipe *p)
{
	buf_free(&p->text);
	free(p->ends);
	memset(p, 0, sizeof(*p));
}

void rpipe_reset(struct rpipe *p)
{
	buf_reset(&p->text);
	p->count = 0;
	p->failed = false;
}

/* The command just formatted ends here. */
static void rpipe_end(struct rpipe *p)
{
	if (p->failed)
		return;
	if (p->count == p->cap) {
		int cap = p->cap ? p->cap * 2 : 64;
		size_t *ends = realloc(p->ends, (size_t)cap * sizeof(*ends));
		if (!ends) {
			p->failed = true;
			return;
		}
		p->ends = ends;
		p->cap = cap;
	}
	p->ends[p->count++] = p->text.len;
}

void rpipe_add(struct rpipe *p, const struct rcmd *c)
{
	if (c->failed || c->argc == 0 || !buf_ok(&c->text))
		p->failed = true;
	if (p->failed)
		return;
	resp_rcmd(&p->text, c);
	rpipe_end(p);
}

void rpipe_addv(struct rpipe *p, int argc, const char **argv)
{
	if (argc <= 0)
		p->failed = true;
	if (p->failed)
		return;
	resp_command(&p->text, argc, argv, NULL);
	rpipe_end(p);
}

void aredis_drop(struct aredis *r, const char *why)
{
	if (r->ac)
		drop_later(r, why);
}

bool aredis_reply_ll(const redisReply *reply, long long *out)
{
	if (!reply)
		return false;
	if (reply->type == REDIS_REPLY_INTEGER) {
		*out = reply->integer;
		return true;
	}
	if (reply->type != REDIS_REPLY_STRING || reply->len == 0 || reply->len > 20)
		return false;
	char text[24], *end;
	memcpy(text, reply->str, reply->len);
	text[reply->len] = '\0';
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

void rcmd_init(struct rcmd *c)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->text);
}

void rcmd_free(struct rcmd *c)
{
	buf_free(&c->text);
	free(c->offs);
	free(c->lens);
	memset(c, 0, sizeof(*c));
}

void rcmd_reset(struct rcmd *c)
{
	buf_reset(&c->text);
	c->argc = 0;
	c->failed = false;
}

void rcmd_add(struct rcmd *c, const char *arg, size_t len)
{
	if (c->failed)
		return;
	if (c->argc == c->cap) {
		int cap = c->cap ? c->cap * 2 : 64;
		size_t *offs = realloc(c->offs, (size_t)cap * sizeof(*offs));
		if (offs)
			c->offs = offs;
		size_t *lens = realloc(c->lens, (size_t)cap * sizeof(*lens));
		if (lens)
			c->lens = lens;
		if (!offs || !lens) {
			c->failed = true;
			return;
		}
		c->cap = cap;
	}
	c->offs[c->argc] = c->text.len;
	c->lens[c->argc] = len;
	buf_append(&c->text, arg, len);
	c->argc++;
}

void rcmd_adds(struct rcmd *c, const char *arg)
{
	rcmd_add(c, arg, strlen(arg));
}

void rcmd_addll(struct rcmd *c, long long v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%lld", v);
	rcmd_add(c, text, (size_t)n);
}

void rcmd_evalsha(struct rcmd *c, const struct aredis *r, int script, int nkeys)
{
	rcmd_adds(c, "EVALSHA");
	rcmd_adds(c, aredis_script_sha(r, script));
	rcmd_addll(c, nkeys);
}
