#include "fetch.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A request between fetch_get and its end. */
enum req_state {
	REQ_QUEUED,  /* waiting for a transfer slot (first attempt or a retry) */
	REQ_ACTIVE,  /* its easy handle is in the multi */
	REQ_BACKOFF, /* waiting out the delay before the next attempt */
};

struct fetch_req {
	struct fetch *f;                 /* borrowed: the owner */
	const struct fetch_req_ops *ops; /* borrowed (static) */
	void *ctx;                       /* borrowed: the requester's */
	enum req_state state;
	CURL *easy;            /* owned while REQ_ACTIVE */
	struct event *backoff; /* owned; armed while REQ_BACKOFF */
	struct buf url;        /* owned: the current attempt's URL (holds the key) */
	int attempt;           /* attempts begun */
	int counted;           /* attempts that count against max_attempts */
	int free_retries;      /* FETCH_RETRY_NOW so far */
	uint64_t bytes;
	bool stopped;
	struct timespec started;
	char errbuf[CURL_ERROR_SIZE];
	struct fetch_req *prev, *next;   /* all requests (fetch.reqs) */
	struct fetch_req *queue_next;    /* fetch.queue while REQ_QUEUED */
};

/* curl's interest in one socket. */
struct sock {
	struct event *ev; /* owned */
	curl_socket_t fd;
	struct sock *next; /* fetch.socks, freed at fetch_free */
	bool in_use;
};

struct fetch {
	struct event_base *base; /* borrowed: the caller's loop */
	CURLM *multi;            /* owned */
	struct event *timer;     /* owned: curl's timeout */
	struct event *cancel_ev; /* owned: deferred fetch_cancel */
	struct event *kick_ev;   /* owned: starts queued requests from the loop */
	struct fetch_opts opts;
	char *user_agent;           /* owned */
	struct fetch_req *reqs;     /* every live request */
	size_t nreqs;
	struct fetch_req *queue, *queue_tail;
	int active;
	struct sock *socks;         /* every socket record ever made (reused) */
	uint64_t attempts, retries;
	uint64_t rng;
	bool cancelling;
	bool idle_told; /* the idle callback ran since the last request ended */
	void (*idle_cb)(void *ctx);
	void *idle_ctx;
};

/* A bound on FETCH_RETRY_NOW per request: the owner bounds it (one per
 * service key), this keeps a wrong owner from spinning. */
#define FREE_RETRIES_MAX 64

static uint64_t xorshift(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

int fetch_backoff_ms(const struct fetch_opts *opts, int attempt, uint64_t *rng)
{
	if (attempt < 2)
		return 0;
	long long delay = opts->backoff_first_ms > 0 ? opts->backoff_first_ms : 1;
	for (int i = 2; i < attempt && delay < opts->backoff_max_ms; i++)
		delay *= 2;
	if (opts->backoff_max_ms > 0 && delay > opts->backoff_max_ms)
		delay = opts->backoff_max_ms;
	long long half = delay / 2;
	long long jitter = half > 0 ? (long long)(xorshift(rng) % (uint64_t)(half + 1)) : 0;
	return (int)(delay - half + jitter);
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* ---- request lifecycle ---- */

/* Tell the owner once when the last request is over. */
static void check_idle(struct fetch *f)
{
	if (f->nreqs == 0 && !f->idle_told) {
		f->idle_told = true;
		if (f->idle_cb)
			f->idle_cb(f->idle_ctx);
	}
}

/* Unlink and free; the owner is not told (it was, or must not be). */
static void req_free(struct fetch_req *r)
{
	struct fetch *f = r->f;
	if (r->easy) {
		curl_multi_remove_handle(f->multi, r->easy);
		curl_easy_cleanup(r->easy);
		f->active--;
	}
	if (r->backoff)
		event_free(r->backoff);
	if (r->state == REQ_QUEUED) {
		struct fetch_req **pp = &f->queue;
		while (*pp && *pp != r)
			pp = &(*pp)->queue_next;
		if (*pp)
			*pp = r->queue_next;
		f->queue_tail = NULL;
		for (struct fetch_req *q = f->queue; q; q = q->queue_next)
			f->queue_tail = q;
	}
	if (r->prev)
		r->prev->next = r->next;
	else
		f->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	f->nreqs--;
	buf_free(&r->url);
	free(r);
}

static void enqueue(struct fetch_req *r)
{
	struct fetch *f = r->f;
	r->state = REQ_QUEUED;
	r->queue_next = NULL;
	if (f->queue_tail)
		f->queue_tail->queue_next = r;
	else
		f->queue = r;
	f->queue_tail = r;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct fetch_req *r = userdata;
	size_t len = size * nmemb;
	if (r->f->cancelling || r->stopped)
		return 0;
	r->bytes += len;
	if (!r->ops->data(r->ctx, ptr, len)) {
		r->stopped = true;
		return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
	}
	return len;
}

static bool configure(struct fetch *f, struct fetch_req *r)
{
	CURL *e = r->easy;
	const struct fetch_opts *o = &f->opts;
	bool ok = curl_easy_setopt(e, CURLOPT_URL, buf_cstr(&r->url)) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_PRIVATE, r) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	/* "": every encoding this libcurl decodes (gzip, deflate, br, zstd) */
	ok = ok && curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms) ==
			   CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->total_timeout_ms) == CURLE_OK;
	if (o->low_speed_seconds > 0 && o->low_speed_bytes > 0) {
		ok = ok && curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)o->low_speed_seconds) ==
				   CURLE_OK;
		ok = ok && curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)o->low_speed_bytes) ==
				   CURLE_OK;
	}
	return ok;
}

/* Begin the next attempt of r: the owner's URL, a fresh easy handle. */
static void start_attempt(struct fetch *f, struct fetch_req *r)
{
	buf_reset(&r->url);
	r->attempt++;
	if (!r->ops->begin(r->ctx, r->attempt, &r->url) || f->cancelling) {
		req_free(r); /* the owner ended it */
		return;
	}
	r->bytes = 0;
	r->stopped = false;
	r->errbuf[0] = '\0';
	r->easy = curl_easy_init();
	if (!r->easy || !buf_ok(&r->url) || !configure(f, r) ||
	    curl_multi_add_handle(f->multi, r->easy) != CURLM_OK) {
		/* no memory or a curl refusal: an attempt that failed at once */
		if (r->easy)
			curl_easy_cleanup(r->easy);
		r->easy = NULL;
		struct fetch_attempt a = {
			.attempt = r->attempt,
			.error = "could not start the transfer",
			.retries_left = 0,
		};
		(void)r->ops->end(r->ctx, &a);
		req_free(r);
		return;
	}
	r->state = REQ_ACTIVE;
	f->active++;
	f->attempts++;
	if (r->attempt > 1)
		f->retries++;
	clock_gettime(CLOCK_MONOTONIC, &r->started);
}

static void pump(struct fetch *f)
{
	while (!f->cancelling && f->queue && f->active < f->opts.max_active) {
		struct fetch_req *r = f->queue;
		f->queue = r->queue_next;
		if (!f->queue)
			f->queue_tail = NULL;
		r->queue_next = NULL;
		r->state = REQ_BACKOFF; /* in no list while starting */
		start_attempt(f, r);
	}
	check_idle(f);
}

static void on_backoff_done(evutil_socket_t fd, short what, void *arg)
{
	struct fetch_req *r = arg;
	enqueue(r);
	pump(r->f);
}

static bool is_retryable(CURLcode code, long status)
{
	switch (code) {
	case CURLE_OK:
		return status >= 500 || status == 408 || status == 429;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_BAD_CONTENT_ENCODING: /* a compressed body cut short */
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		return true;
	default:
		return false;
	}
}

/* One transfer ended: ask the owner, then retry, wait or finish. */
static void attempt_done(struct fetch *f, CURL *easy, CURLcode code)
{
	struct fetch_req *r = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
	long status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(f->multi, easy);
	curl_easy_cleanup(easy);
	r->easy = NULL;
	f->active--;
	r->counted++;
	if (f->cancelling) {
		req_free(r);
		return;
	}
	struct fetch_attempt a = {
		.attempt = r->attempt,
		.retries_left = f->opts.max_attempts - r->counted,
		.http_status = status,
		.transport_ok = code == CURLE_OK,
		.retryable = is_retryable(code, status),
		.stopped = r->stopped,
		.error = code == CURLE_OK ? ""
			 : r->errbuf[0]    ? r->errbuf
					   : curl_easy_strerror(code),
		.bytes = r->bytes,
		.seconds = seconds_since(&r->started),
	};
	if (a.retries_left < 0)
		a.retries_left = 0;
	enum fetch_next next = r->ops->end(r->ctx, &a);
	if (f->cancelling) {
		req_free(r);
		return;
	}
	if (next == FETCH_RETRY_NOW && r->free_retries < FREE_RETRIES_MAX) {
		r->free_retries++;
		r->counted--;
		enqueue(r);
		return;
	}
	if (next == FETCH_RETRY && a.retries_left > 0) {
		int delay = fetch_backoff_ms(&f->opts, r->counted + 1, &f->rng);
		if (!r->backoff)
			r->backoff = evtimer_new(f->base, on_backoff_done, r);
		if (r->backoff) {
			struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
			r->state = REQ_BACKOFF;
			if (evtimer_add(r->backoff, &tv) == 0)
				return;
		}
		enqueue(r); /* no timer: retry without the wait rather than lose it */
		return;
	}
	req_free(r);
}

static void check_multi_info(struct fetch *f)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(f->multi, &left))) {
		if (msg->msg == CURLMSG_DONE)
			attempt_done(f, msg->easy_handle, msg->data.result);
	}
	pump(f);
}

/* ---- curl <-> libevent ---- */

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *f = arg;
	int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;
	curl_multi_socket_action(f->multi, fd, flags, &running);
	check_multi_info(f);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *f = arg;
	int running;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi_info(f);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct fetch *f = userp;
	if (timeout_ms < 0) {
		evtimer_del(f->timer);
		return 0;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	return evtimer_add(f->timer, &tv) == 0 ? 0 : -1;
}

static int curl_socket_cb(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp)
{
	struct fetch *f = userp;
	struct sock *sk = socketp;
	if (action == CURL_POLL_REMOVE) {
		if (sk) {
			event_del(sk->ev);
			sk->in_use = false;
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	if (!sk) {
		for (struct sock *it = f->socks; it; it = it->next)
			if (!it->in_use) {
				sk = it;
				break;
			}
		if (!sk) {
			sk = calloc(1, sizeof(*sk));
			if (!sk)
				return -1;
			sk->next = f->socks;
			f->socks = sk;
		}
		sk->in_use = true;
		curl_multi_assign(f->multi, s, sk);
	}
	short what = (short)(((action & CURL_POLL_IN) ? EV_READ : 0) |
			     ((action & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (sk->ev && (sk->fd != s || event_get_events(sk->ev) != what)) {
		event_free(sk->ev);
		sk->ev = NULL;
	}
	if (!sk->ev) {
		sk->ev = event_new(f->base, s, what, on_socket_event, f);
		if (!sk->ev)
			return -1;
	}
	sk->fd = s;
	return event_add(sk->ev, NULL) == 0 ? 0 : -1;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void on_cancel(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *f = arg;
	while (f->reqs)
		req_free(f->reqs);
	f->cancelling = false;
	check_idle(f);
}

/* ---- public ---- */

struct fetch *fetch_new(struct event_base *base, const struct fetch_opts *opts)
{
	struct fetch *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->base = base;
	f->opts = *opts;
	if (f->opts.max_active < 1)
		f->opts.max_active = 1;
	if (f->opts.max_attempts < 1)
		f->opts.max_attempts = 1;
	f->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)f;
	if (!f->rng)
		f->rng = 0x9E3779B97F4A7C15ULL;
	f->user_agent = strdup(opts->user_agent ? opts->user_agent : "evcharger");
	f->timer = evtimer_new(base, on_timer, f);
	f->cancel_ev = event_new(base, -1, 0, on_cancel, f);
	f->kick_ev = event_new(base, -1, 0, on_kick, f);
	f->multi = curl_multi_init();
	f->idle_told = true; /* nothing to report before the first request */
	if (!f->user_agent || !f->timer || !f->cancel_ev || !f->kick_ev || !f->multi)
		goto fail;
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	/* keep-alive: one idle connection per slot stays for the next page */
	curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)f->opts.max_active + 2);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)f->opts.max_active);
	return f;
fail:
	fetch_free(f);
	return NULL;
}

void fetch_free(struct fetch *f)
{
	if (!f)
		return;
	f->idle_cb = NULL;
	while (f->reqs)
		req_free(f->reqs);
	if (f->multi)
		curl_multi_cleanup(f->multi); /* may still call curl_socket_cb */
	while (f->socks) {
		struct sock *next = f->socks->next;
		if (f->socks->ev)
			event_free(f->socks->ev);
		free(f->socks);
		f->socks = next;
	}
	if (f->timer)
		event_free(f->timer);
	if (f->cancel_ev)
		event_free(f->cancel_ev);
	if (f->kick_ev)
		event_free(f->kick_ev);
	free(f->user_agent);
	free(f);
}

bool fetch_get(struct fetch *f, const struct fetch_req_ops *ops, void *ctx)
{
	struct fetch_req *r = calloc(1, sizeof(*r));
	if (!r)
		return false;
	r->f = f;
	r->ops = ops;
	r->ctx = ctx;
	buf_init(&r->url);
	r->next = f->reqs;
	if (f->reqs)
		f->reqs->prev = r;
	f->reqs = r;
	f->nreqs++;
	f->idle_told = false;
	enqueue(r);
	/* started from the loop, never inside the caller's call (which may be
	 * one of our own callbacks) */
	event_active(f->kick_ev, EV_TIMEOUT, 0);
	return true;
}

void fetch_cancel(struct fetch *f)
{
	f->cancelling = true;
	event_active(f->cancel_ev, EV_TIMEOUT, 0);
}

void fetch_on_idle(struct fetch *f, void (*cb)(void *ctx), void *ctx)
{
	f->idle_cb = cb;
	f->idle_ctx = ctx;
}

size_t fetch_pending(const struct fetch *f)
{
	return f->nreqs;
}

uint64_t fetch_attempts(const struct fetch *f)
{
	return f->attempts;
}

uint64_t fetch_retries(const struct fetch *f)
{
	return f->retries;
}
