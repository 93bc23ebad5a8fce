/* upstream: the public EV charger API's protocol (B552584/EvCharger), for
 * any role that reads it (ingestd: getChargerInfo; realtimed:
 * getChargerStatus).
 *
 * Owns three things, none of which does I/O:
 *  - request URLs: base + operation + parameters, the service key
 *    URL-encoded. A URL carries the key: it reaches a log only through
 *    log_redact (serviceKey=*** there).
 *  - the page parser: one response body, fed in chunks as they arrive
 *    (any split), stream-parsed on json_stream so a page's tree is never
 *    built. Reads the envelope (resultCode, resultMsg, totalCount, pageNo,
 *    numOfRows; in any order, strings or numbers) and calls back once per
 *    item with the item as a struct record_raw, whether `item` is an array
 *    or a single object (XML converted to JSON), and with `items: ""` read
 *    as an empty page. A body that starts with '<' is XML: the gateway's
 *    OpenAPI_ServiceResponse or the service's own <response><header>; it is
 *    kept (bounded) and classified at the end. An empty or truncated body is
 *    an error, never the end of the data.
 *  - classification of every outcome into an action (retry, next key,
 *    configuration error, fail), and the service-key ring: per-key call
 *    counts, a key whose quota is spent set aside until midnight Korea time.
 *
 * Items reach the callback while the body is still arriving, before the
 * page is known to be complete and before a trailing resultCode is read: a
 * caller keeps them provisional (ingestd tags them with the attempt) until
 * upstream_page_finish says UPSTREAM_OK. */
#ifndef EV_UPSTREAM_H
#define EV_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base.h"
#include "buf.h"
#include "fetch.h"
#include "record.h"

#define UPSTREAM_OP_INFO "getChargerInfo"
#define UPSTREAM_OP_STATUS "getChargerStatus"
/* The API's page limit: numOfRows at most 9999. */
#define UPSTREAM_MAX_ROWS 9999

/* ---- URLs ---- */

struct upstream_query {
	const char *op;      /* UPSTREAM_OP_INFO or UPSTREAM_OP_STATUS */
	long page_no;        /* from 1 */
	int num_of_rows;     /* 1..UPSTREAM_MAX_ROWS */
	int period_minutes;  /* getChargerStatus only; 0: not sent */
	const char *zcode;   /* optional filter, NULL or "": not sent */
};

/* Append base "/" op "?serviceKey=...&pageNo=...&numOfRows=...&dataType=JSON"
 * (+ period, zcode) to out. base may end in '/'. The key is percent-encoded
 * unless it already is (it holds a %XX escape: portals hand out both forms).
 * False when a parameter is out of range. */
bool upstream_url(struct buf *out, const char *base, const char *service_key,
		  const struct upstream_query *q) MUSTCHECK;

/* ---- outcomes ---- */

enum upstream_action {
	UPSTREAM_OK,       /* a complete, well-formed page */
	UPSTREAM_RETRY,    /* transient (5xx, 01/99, truncated, empty): retry with backoff */
	UPSTREAM_NEXT_KEY, /* 22: this key's daily quota is spent; another key may work */
	UPSTREAM_CONFIG,   /* 12/20/30/31/32: wrong URL or key; stop, fix the configuration */
	UPSTREAM_FAIL,     /* 10, a 4xx, a malformed answer: this request is wrong; no retry */
};

/* "ok", "retry", "next_key", "config", "fail". */
const char *upstream_action_name(enum upstream_action action);

/* The action for a gateway returnReasonCode or a service resultCode ("00"
 * is OK; unknown codes retry, bounded by the caller). */
enum upstream_action upstream_classify_code(const char *code);

/* The envelope of a JSON page. has_* tell which keys were present. */
struct upstream_envelope {
	char result_code[8];
	char result_msg[128];
	long total_count, page_no, num_of_rows;
	bool has_result_code, has_total_count, has_page_no, has_num_of_rows;
};

/* What a finished page (or a failed attempt) amounts to. */
struct upstream_result {
	enum upstream_action action;
	char code[8];      /* the gateway's returnReasonCode or the resultCode, "" if none */
	char reason[256];  /* one line, for logs and ingest_run.error; never holds the key */
	struct upstream_envelope env;
	long items;        /* items delivered to the callback */
	bool is_xml;
};

/* ---- page parser ---- */

/* One item of the page, in order; position is its index in the item list
 * (0 for a lone object). raw is valid only during the call. Return false to
 * stop the parse (upstream_page_feed then fails: the caller had a reason). */
typedef bool (*upstream_item_cb)(void *ctx, const struct record_raw *raw, long position);

struct upstream_page;

struct upstream_page *upstream_page_new(upstream_item_cb cb, void *ctx) MUSTCHECK;
void upstream_page_free(struct upstream_page *page);
/* Start over for a new response (a retry): the parser and counters reset. */
bool upstream_page_reset(struct upstream_page *page) MUSTCHECK;
/* Feed body bytes. False when the body cannot be a valid page (parse error,
 * callback stop): stop feeding; upstream_page_finish reports why. */
bool upstream_page_feed(struct upstream_page *page, const void *data, size_t len) MUSTCHECK;
/* The body ended (http_status: the response's status, 0 if none). Fills
 * out and returns its action. A page is UPSTREAM_OK only with HTTP 2xx, a
 * complete JSON document, resultCode "00" and a totalCount. */
enum upstream_action upstream_page_finish(struct upstream_page *page, long http_status,
					  struct upstream_result *out);
/* One fetch attempt of a page, ended: a transport failure (no complete
 * response; retried when fetch.c says retryable) or else
 * upstream_page_finish on the body. The transport error text passes
 * log_redact into out->reason. What every role's `end` callback starts with. */
enum upstream_action upstream_attempt_finish(struct upstream_page *page,
					     const struct fetch_attempt *attempt,
					     struct upstream_result *out);
/* Body bytes fed since the last reset. */
uint64_t upstream_page_bytes(const struct upstream_page *page);

/* Items a page should hold: numOfRows, or what remains of totalCount on the
 * last page; 0 past the end. */
long upstream_expected_items(long total_count, long page_no, long num_of_rows);
/* Pages for total_count items. */
long upstream_page_count(long total_count, long num_of_rows);

/* ---- service keys ---- */

struct upstream_keys;

/* keys are copied. max_calls_per_key: the daily quota the client enforces
 * itself (0: none; the gateway's 22 still counts). */
struct upstream_keys *upstream_keys_new(const char *const *keys, size_t nkeys,
					long max_calls_per_key) MUSTCHECK;
void upstream_keys_free(struct upstream_keys *ring);
/* The key for the next call, counting the call; *index (may be NULL) gets
 * its position. NULL when every key's quota is spent (until midnight Korea
 * time, as of `now`). */
const char *upstream_keys_take(struct upstream_keys *ring, time_t now, int *index);
/* The gateway said key `index` is out of quota: set it aside until the
 * next midnight Korea time. Idempotent (concurrent pages report it twice). */
void upstream_keys_exhausted(struct upstream_keys *ring, int index, time_t now);
size_t upstream_keys_count(const struct upstream_keys *ring);
size_t upstream_keys_usable(const struct upstream_keys *ring, time_t now);
long upstream_keys_calls(const struct upstream_keys *ring, int index);

#endif
