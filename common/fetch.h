/* fetch: concurrent HTTP GETs on the caller's libevent loop, through the
 * libcurl multi socket interface.
 *
 * Owns the curl multi handle, its socket and timer events on the caller's
 * event_base, the requests in flight, waiting for a slot, or waiting out a
 * backoff, and the retry policy: each request is attempted until its owner
 * accepts an attempt or the retries (exponential backoff with jitter) run
 * out. Transport failures (timeouts, refused or reset connections, a body
 * shorter than announced) and HTTP 5xx/408/429 are marked retryable; the
 * owner also retries what only it can judge (a truncated JSON document
 * behind a clean close, an XML error in place of a page).
 *
 * Role-neutral: ingestd runs it until a load is fetched, realtimed keeps one
 * for its whole life. Nothing here knows the upstream's format; URLs come
 * from the owner at each attempt (a retry may use another service key) and
 * never reach a log unredacted (logging is the owner's: this module logs
 * nothing).
 *
 * Bodies stream: each chunk goes to the owner's data callback as it
 * arrives (keep-alive connections, gzip/deflate/br decoded by curl), so a
 * page is parsed while it downloads and memory does not grow with its size.
 * A callback that blocks (ingestd's COPY to a slow database) holds the loop:
 * the sockets' TCP windows then close, which is the backpressure wanted. */
#ifndef EV_FETCH_H
#define EV_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "buf.h"

struct event_base;

struct fetch_opts {
	int max_active;          /* transfers at once (connections), >= 1 */
	int connect_timeout_ms;  /* TCP (+TLS) connect */
	int low_speed_seconds;   /* abort a transfer slower than low_speed_bytes/s ... */
	int low_speed_bytes;     /* ... for this long (both 0: off) */
	int total_timeout_ms;    /* one attempt, start to end; 0: none */
	int max_attempts;        /* per request, the first included, >= 1 */
	int backoff_first_ms;    /* before the 2nd attempt; doubled each time */
	int backoff_max_ms;      /* cap of one wait */
	const char *user_agent;  /* copied; NULL: "evcharger" */
};

/* One finished attempt, as the owner's `end` callback sees it. */
struct fetch_attempt {
	int attempt;       /* 1-based */
	int retries_left;  /* attempts still allowed after this one */
	long http_status;  /* 0 when no response arrived */
	bool transport_ok; /* the transfer completed (whatever the status) */
	bool retryable;    /* transport failure or 5xx/408/429 */
	bool stopped;      /* the owner's data callback returned false */
	const char *error; /* "" or why the transfer failed ("Operation timed out ...") */
	uint64_t bytes;    /* body bytes delivered (decoded) */
	double seconds;
};

enum fetch_next {
	FETCH_DONE,      /* the request is over (accepted, or given up by the owner) */
	FETCH_RETRY,     /* try again after a backoff; past max_attempts this is FETCH_DONE */
	FETCH_RETRY_NOW, /* try again at once, not counted (another key); the owner bounds it */
};

struct fetch_req_ops {
	/* Start of an attempt: write the URL into url (empty on entry). False
	 * ends the request without that attempt (no key left, cancelled):
	 * `end` is not called. */
	bool (*begin)(void *ctx, int attempt, struct buf *url);
	/* Body bytes of the current attempt. False stops the transfer. */
	bool (*data)(void *ctx, const char *bytes, size_t len);
	/* The attempt ended: what next. After FETCH_DONE (or a retry refused
	 * because none are left) the request is gone and ctx is the owner's
	 * again. */
	enum fetch_next (*end)(void *ctx, const struct fetch_attempt *attempt);
};

struct fetch;

/* NULL when curl or libevent refuse to set up. curl_global_init is the
 * caller's (once per process, before threads). */
struct fetch *fetch_new(struct event_base *base, const struct fetch_opts *opts) MUSTCHECK;
/* Abort every transfer (no callbacks) and free. NULL-safe. Never from
 * inside one of this fetch's callbacks: use fetch_cancel there. */
void fetch_free(struct fetch *f);

/* Queue a GET; it starts when a slot is free. ops is borrowed (static);
 * ctx is the owner's and must stay valid until the request is over. */
bool fetch_get(struct fetch *f, const struct fetch_req_ops *ops, void *ctx) MUSTCHECK;

/* Drop every request (queued, waiting, in flight) at the next loop pass,
 * calling no more callbacks; safe from inside any callback. */
void fetch_cancel(struct fetch *f);

/* Called whenever the last request is over (nothing queued, waiting or in
 * flight): ingestd ends its loop there. */
void fetch_on_idle(struct fetch *f, void (*cb)(void *ctx), void *ctx);

/* Requests not yet over. */
size_t fetch_pending(const struct fetch *f);
/* Transfers begun, and how many of them were retries. */
uint64_t fetch_attempts(const struct fetch *f);
uint64_t fetch_retries(const struct fetch *f);

/* The wait before attempt n (2..): first * 2^(n-2), capped, then "equal
 * jitter" (half fixed, half random) so concurrent retries spread out.
 * rng: a caller's xorshift state (nonzero). Pure but for *rng. */
int fetch_backoff_ms(const struct fetch_opts *opts, int attempt, uint64_t *rng);

#endif
