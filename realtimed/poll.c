#include "poll.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "fetch.h"
#include "log.h"
#include "model.h"
#include "record.h"
#include "upstream.h"

/* Rejected items logged per pass; the rest are counted. */
#define REJECTS_LOGGED 5

struct pass;

/* One page of a pass. */
struct page_job {
	struct pass *pass; /* borrowed: the owner */
	long page_no;
	int key_index;
	struct upstream_page *parser; /* owned while the page is in flight */
	long items;		      /* current attempt */
	bool is_over;
};

/* The running pass. */
struct pass {
	struct poller *p; /* borrowed */
	enum poll_kind kind;
	int period_minutes;
	struct page_job **jobs; /* owned: index page_no - 1 */
	long njobs, open;
	struct poll_summary summary;
	struct timespec started;
	bool is_stopping;
};

struct poller {
	struct event_base *base; /* borrowed */
	struct poll_opts opts;
	char *base_url;				/* owned */
	struct fetch *fetch;			/* owned */
	struct upstream_keys *keys, *next_keys; /* owned; next_keys waits for the pass's end */
	struct poll_events events;
	void *ctx;
	struct pass *pass;     /* owned: the running pass, NULL when none */
	struct event *done_ev; /* owned: on_done from the loop */
	bool is_cancelling;    /* fetch_cancel sent, transfers not yet gone */
	bool key_warned;
	struct record rec; /* owned: the item being normalized */
	struct table_item item;
};

const char *poll_kind_name(enum poll_kind kind)
{
	return kind == POLL_SWEEP ? "sweep" : "status";
}

const char *poll_outcome_name(enum poll_outcome outcome)
{
	switch (outcome) {
	case POLL_COMPLETE: return "complete";
	case POLL_PARTIAL: return "partial";
	case POLL_FAILED: return "failed";
	case POLL_CONFIG: return "config";
	case POLL_NO_KEY: return "no_key";
	}
	return "unknown";
}

static void set_error(struct pass *pass, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct pass *pass, const char *fmt, ...)
{
	if (pass->summary.error[0])
		return;
	char text[sizeof(pass->summary.error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_redact(text, pass->summary.error, sizeof(pass->summary.error));
}

static void pass_free(struct pass *pass)
{
	if (!pass)
		return;
	for (long i = 0; i < pass->njobs; i++) {
		if (pass->jobs[i])
			upstream_page_free(pass->jobs[i]->parser);
		free(pass->jobs[i]);
	}
	free(pass->jobs);
	free(pass);
}

/* ---- items ---- */

static void log_reject(struct pass *pass, const struct record_raw *raw, const struct record *rec)
{
	pass->summary.rejected++;
	if (pass->summary.rejected > REJECTS_LOGGED)
		return;
	struct buf text = BUF_INIT;
	record_raw_json(raw, &text, 300);
	log_warn("%s item rejected (%s): %s; item %s", poll_kind_name(pass->kind),
		 record_reason_code(rec->reason), rec->detail, buf_cstr(&text));
	buf_free(&text);
}

static bool on_item(void *ctx, const struct record_raw *raw, long position)
{
	struct page_job *job = ctx;
	struct pass *pass = job->pass;
	struct poller *p = pass->p;
	struct record *rec = &p->rec;
	job->items++;
	bool quick_known = false;
	enum record_reason why;
	if (pass->kind == POLL_SWEEP && record_normalize(raw, RECORD_MASTER, rec) == RECORD_OK)
		quick_known = true;
	else if ((why = record_normalize(raw, RECORD_STATUS, rec)) != RECORD_OK) {
		log_reject(pass, raw, rec);
		return true;
	}
	struct table_item *it = &p->item;
	it->stat_id = rec->text[RF_STAT_ID];
	it->stat_id_len = rec->len[RF_STAT_ID];
	it->chger_id = rec->text[RF_CHGER_ID];
	it->chger_id_len = rec->len[RF_CHGER_ID];
	it->stat = rec->stat;
	it->updated = (int64_t)rec->time[RT_STAT_UPD];
	it->quick_known = quick_known;
	it->quick = quick_known && rec->has_output && model_is_quick(rec->output_kw);
	it->from_sweep = pass->kind == POLL_SWEEP;
	p->events.on_item(p->ctx, it);
	return true;
}

/* ---- pages ---- */

static const struct fetch_req_ops page_ops;

static void pass_check_done(struct pass *pass)
{
	if (pass->open == 0)
		event_active(pass->p->done_ev, EV_TIMEOUT, 0);
}

/* Stop the pass: no more pages start; the rest fail as they end. */
static void stop(struct pass *pass, enum poll_outcome why)
{
	if (!pass->is_stopping) {
		pass->is_stopping = true;
		pass->summary.outcome = why;
	}
}

static bool add_pages(struct pass *pass, long last_page)
{
	if (last_page <= pass->njobs)
		return true;
	struct page_job **grown = realloc(pass->jobs, (size_t)last_page * sizeof(*grown));
	if (!grown)
		return false;
	pass->jobs = grown;
	for (long n = pass->njobs + 1; n <= last_page; n++) {
		struct page_job *job = calloc(1, sizeof(*job));
		pass->jobs[n - 1] = job;
		if (!job)
			return false;
		pass->njobs = n;
		job->pass = pass;
		job->page_no = n;
		if (!fetch_get(pass->p->fetch, &page_ops, job)) {
			job->is_over = true;
			return false;
		}
		pass->open++;
	}
	return true;
}

static void page_over(struct page_job *job, bool accepted, const char *why)
{
	struct pass *pass = job->pass;
	upstream_page_free(job->parser);
	job->parser = NULL;
	job->is_over = true;
	pass->open--;
	if (accepted) {
		pass->summary.items += job->items;
	} else {
		pass->summary.pages_failed++;
		if (!pass->is_stopping) {
			log_warn("%s page %ld failed: %s", poll_kind_name(pass->kind), job->page_no,
				 why);
			set_error(pass, "page %ld: %s", job->page_no, why);
		}
		if (job->page_no == 1)
			stop(pass, POLL_FAILED); /* no totalCount: nothing else can be planned */
	}
	pass_check_done(pass);
}

static bool page_begin(void *ctx, int attempt, struct buf *url)
{
	struct page_job *job = ctx;
	struct pass *pass = job->pass;
	struct poller *p = pass->p;
	if (pass->is_stopping) {
		page_over(job, false, "stopped");
		return false;
	}
	int key_index = -1;
	const char *key = upstream_keys_take(p->keys, time(NULL), &key_index);
	if (!key) {
		if (!p->key_warned)
			log_error("every service key's daily quota is spent (%zu keys): polling "
				  "stops until the quota resets at midnight Korea time",
				  upstream_keys_count(p->keys));
		p->key_warned = true;
		stop(pass, POLL_NO_KEY);
		page_over(job, false, "every service key's daily quota is spent");
		return false;
	}
	p->key_warned = false;
	job->key_index = key_index;
	job->items = 0;
	if (!job->parser)
		job->parser = upstream_page_new(on_item, job);
	else if (!upstream_page_reset(job->parser)) {
		upstream_page_free(job->parser);
		job->parser = NULL;
	}
	const struct upstream_query q = {
		.op = pass->kind == POLL_SWEEP ? UPSTREAM_OP_INFO : UPSTREAM_OP_STATUS,
		.page_no = job->page_no,
		.num_of_rows = p->opts.page_size,
		.period_minutes = pass->kind == POLL_STATUS ? pass->period_minutes : 0,
	};
	if (!job->parser || !upstream_url(url, p->base_url, key, &q)) {
		page_over(job, false, "out of memory");
		return false;
	}
	if (attempt > 1)
		log_debug("%s page %ld: attempt %d", poll_kind_name(pass->kind), job->page_no,
			  attempt);
	return true;
}

static bool page_data(void *ctx, const char *bytes, size_t len)
{
	struct page_job *job = ctx;
	return upstream_page_feed(job->parser, bytes, len);
}

static enum fetch_next page_end(void *ctx, const struct fetch_attempt *a)
{
	struct page_job *job = ctx;
	struct pass *pass = job->pass;
	struct poller *p = pass->p;
	if (pass->is_stopping) {
		page_over(job, false, "stopped");
		return FETCH_DONE;
	}
	struct upstream_result res;
	enum upstream_action action;
	if (!a->transport_ok && !a->stopped) {
		memset(&res, 0, sizeof(res));
		action = a->retryable ? UPSTREAM_RETRY : UPSTREAM_FAIL;
		char safe[200];
		log_redact(a->error, safe, sizeof(safe));
		snprintf(res.reason, sizeof(res.reason), "transport: %s", safe);
	} else {
		action = upstream_page_finish(job->parser, a->http_status, &res);
	}
	/* A sweep page short of its share of totalCount met paging drift: its
	 * missing chargers are on no page of this pass. A status page may
	 * differ: the window moves while we page, and the next poll overlaps. */
	if (action == UPSTREAM_OK && pass->kind == POLL_SWEEP) {
		long expected = upstream_expected_items(res.env.total_count, job->page_no,
							p->opts.page_size);
		if (res.items != expected) {
			action = UPSTREAM_RETRY;
			snprintf(res.reason, sizeof(res.reason),
				 "%ld items where totalCount %ld and %d rows a page make %ld",
				 res.items, res.env.total_count, p->opts.page_size, expected);
		}
	}
	switch (action) {
	case UPSTREAM_OK:
		if (res.env.total_count > pass->summary.total_count)
			pass->summary.total_count = res.env.total_count;
		if (!add_pages(pass,
			       upstream_page_count(pass->summary.total_count, p->opts.page_size))) {
			set_error(pass, "out of memory planning pages");
			stop(pass, POLL_FAILED);
		}
		page_over(job, true, NULL);
		return FETCH_DONE;
	case UPSTREAM_RETRY:
		if (a->retries_left > 0) {
			log_info("%s page %ld attempt %d: %s; retrying", poll_kind_name(pass->kind),
				 job->page_no, a->attempt, res.reason);
			return FETCH_RETRY;
		}
		page_over(job, false, res.reason);
		return FETCH_DONE;
	case UPSTREAM_NEXT_KEY:
		log_warn("service key #%d is out of quota (%s); trying the next key",
			 job->key_index + 1, res.reason);
		upstream_keys_exhausted(p->keys, job->key_index, time(NULL));
		return FETCH_RETRY_NOW;
	case UPSTREAM_CONFIG:
		log_error("%s page %ld: %s: configuration error (service key or UPSTREAM_URL)",
			  poll_kind_name(pass->kind), job->page_no, res.reason);
		set_error(pass, "configuration: %s", res.reason);
		stop(pass, POLL_CONFIG);
		page_over(job, false, res.reason);
		return FETCH_DONE;
	case UPSTREAM_FAIL: page_over(job, false, res.reason); return FETCH_DONE;
	}
	abort();
}

static const struct fetch_req_ops page_ops = {
	.begin = page_begin,
	.data = page_data,
	.end = page_end,
};

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct poller *p = arg;
	struct pass *pass = p->pass;
	if (!pass || pass->open > 0)
		return;
	p->pass = NULL;
	struct poll_summary *s = &pass->summary;
	s->pages = pass->njobs;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	s->seconds = (double)(now.tv_sec - pass->started.tv_sec) +
		     (double)(now.tv_nsec - pass->started.tv_nsec) / 1e9;
	if (!pass->is_stopping && s->pages_failed > 0)
		s->outcome = POLL_PARTIAL;
	struct poll_summary copy = *s;
	pass_free(pass);
	if (p->next_keys) {
		upstream_keys_free(p->keys);
		p->keys = p->next_keys;
		p->next_keys = NULL;
	}
	p->events.on_done(p->ctx, &copy);
}

static void on_fetch_idle(void *ctx)
{
	struct poller *p = ctx;
	p->is_cancelling = false;
}

/* ---- public ---- */

struct poller *poller_new(struct event_base *base, const struct poll_opts *opts,
			  const struct poll_events *events, void *ctx)
{
	struct poller *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->base = base;
	p->opts = *opts;
	p->events = *events;
	p->ctx = ctx;
	record_init(&p->rec);
	p->base_url = strdup(opts->base_url ? opts->base_url : "");
	p->opts.base_url = p->base_url;
	const struct fetch_opts fo = {
		.max_active = opts->concurrency,
		.connect_timeout_ms = opts->connect_timeout_ms,
		.low_speed_seconds = 30,
		.low_speed_bytes = 1024,
		.total_timeout_ms = opts->page_timeout_s * 1000,
		.max_attempts = opts->max_attempts,
		.backoff_first_ms = opts->backoff_first_ms,
		.backoff_max_ms = opts->backoff_max_ms,
		.user_agent = "evcharger-realtimed",
	};
	p->fetch = fetch_new(base, &fo);
	p->done_ev = event_new(base, -1, 0, on_done, p);
	if (!p->base_url || !p->fetch || !p->done_ev) {
		poller_free(p);
		return NULL;
	}
	fetch_on_idle(p->fetch, on_fetch_idle, p);
	return p;
}

void poller_free(struct poller *p)
{
	if (!p)
		return;
	fetch_free(p->fetch);
	pass_free(p->pass);
	upstream_keys_free(p->keys);
	upstream_keys_free(p->next_keys);
	if (p->done_ev)
		event_free(p->done_ev);
	record_free(&p->rec);
	free(p->base_url);
	free(p);
}

bool poller_set_keys(struct poller *p, const struct cfg_list *keys)
{
	if (keys->count == 0)
		return false;
	struct upstream_keys *ring = upstream_keys_new((const char *const *)keys->items,
						       keys->count, p->opts.key_call_limit);
	if (!ring)
		return false;
	if (p->pass) {
		upstream_keys_free(p->next_keys);
		p->next_keys = ring;
	} else {
		upstream_keys_free(p->keys);
		p->keys = ring;
	}
	return true;
}

bool poller_start(struct poller *p, enum poll_kind kind, int period_minutes)
{
	if (p->pass || p->is_cancelling || !p->keys)
		return false;
	struct pass *pass = calloc(1, sizeof(*pass));
	if (!pass)
		return false;
	pass->p = p;
	pass->kind = kind;
	pass->period_minutes = period_minutes;
	pass->summary.kind = kind;
	pass->summary.outcome = POLL_COMPLETE;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	pass->summary.started_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	clock_gettime(CLOCK_MONOTONIC, &pass->started);
	p->pass = pass;
	if (!add_pages(pass, 1)) {
		p->pass = NULL;
		pass_free(pass);
		return false;
	}
	return true;
}

void poller_cancel(struct poller *p)
{
	if (!p->pass)
		return;
	if (fetch_pending(p->fetch) > 0) {
		p->is_cancelling = true;
		fetch_cancel(p->fetch); /* no more callbacks: the pages can go now */
	}
	pass_free(p->pass);
	p->pass = NULL;
}

bool poller_is_busy(const struct poller *p)
{
	return p->pass || p->is_cancelling;
}

enum poll_kind poller_kind(const struct poller *p)
{
	return p->pass ? p->pass->kind : POLL_STATUS;
}

uint64_t poller_attempts(const struct poller *p)
{
	return fetch_attempts(p->fetch);
}

uint64_t poller_retries(const struct poller *p)
{
	return fetch_retries(p->fetch);
}
