/* poll: one pass over the upstream's pages, on realtimed's event loop.
 *
 * A pass is either a status poll (getChargerStatus?period=P: the chargers
 * that changed in the last P minutes) or a sweep (getChargerInfo: every
 * charger, with its status and output). Page 1 goes first for totalCount;
 * then every other page at once, at most `concurrency` transfers at a time
 * (fetch.h: curl multi on the loop, retries with backoff). Bodies are
 * stream-parsed (upstream.h) and each item normalized (record.h) and handed
 * to on_item while the page is still arriving: a status is a fact whatever
 * happens to the rest of its page, and applying it is idempotent, so items
 * of an attempt that later fails need no undo.
 *
 * A sweep item is normalized as a master record first (its output tells
 * whether the charger is quick); one that master rules reject (bad
 * coordinates...) still gives its status, read in status mode. A rejected
 * item is counted, and the first few of a pass are logged with the reason.
 *
 * Owns the fetcher, the pass's pages and parsers and the service-key ring
 * (quota errors set a key aside until midnight Korea time). */
#ifndef REALTIMED_POLL_H
#define REALTIMED_POLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "cfg.h"
#include "table.h"

struct event_base;

enum poll_kind { POLL_STATUS, POLL_SWEEP };

enum poll_outcome {
	POLL_COMPLETE, /* every page accepted */
	POLL_PARTIAL,  /* page 1 and some others accepted, some failed */
	POLL_FAILED,   /* page 1 failed: nothing known */
	POLL_CONFIG,   /* the gateway says the key or URL is wrong */
	POLL_NO_KEY,   /* every key's daily quota is spent */
};

struct poll_opts {
	const char *base_url; /* UPSTREAM_URL (copied) */
	int page_size;
	int concurrency;
	int max_attempts;
	int backoff_first_ms, backoff_max_ms;
	int connect_timeout_ms;
	int page_timeout_s;
	long key_call_limit; /* per key per Korea-time day; 0: none */
};

struct poll_summary {
	enum poll_kind kind;
	enum poll_outcome outcome;
	long total_count;
	long pages, pages_failed;
	long items, rejected;
	int64_t started_ms; /* wall clock, Unix ms */
	double seconds;
	char error[256]; /* first failure, no secrets */
};

struct poll_events {
	/* One normalized status (borrowed for the call). */
	void (*on_item)(void *ctx, const struct table_item *item);
	/* The pass is over (not called after poller_cancel). */
	void (*on_done)(void *ctx, const struct poll_summary *summary);
};

struct poller;

struct poller *poller_new(struct event_base *base, const struct poll_opts *opts,
			  const struct poll_events *events, void *ctx) MUSTCHECK;
void poller_free(struct poller *p);

/* The service keys (copied); while a pass runs, they take effect at the
 * next one. False on no memory or an empty list. */
bool poller_set_keys(struct poller *p, const struct cfg_list *keys) MUSTCHECK;
/* Start a pass; false when one is running or being cancelled, or no key. */
bool poller_start(struct poller *p, enum poll_kind kind, int period_minutes) MUSTCHECK;
/* Drop the running pass (no on_done); busy until the transfers are gone. */
void poller_cancel(struct poller *p);
bool poller_is_busy(const struct poller *p);
/* The running pass's kind (meaningful while busy). */
enum poll_kind poller_kind(const struct poller *p);
uint64_t poller_attempts(const struct poller *p);
uint64_t poller_retries(const struct poller *p);

const char *poll_kind_name(enum poll_kind kind);
const char *poll_outcome_name(enum poll_outcome outcome);

#endif
