#include "pipeline.h"

#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "log.h"
#include "record.h"

/* ---- progress ----
 * On a terminal: one line redrawn in place (pages done/total, records,
 * records/s, ETA). Otherwise a JSON log line every few seconds. The final
 * summary line is chargers.c's. */
struct progress {
	bool is_tty;
	bool drawn;            /* a bar is on screen: end it before a log line */
	int interval_ms;       /* between JSON lines */
	double started;        /* monotonic seconds */
	double last_line;
	long pages_total, pages_done, pages_failed;
	long long records, bytes;
};



static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_init(struct progress *p, bool is_tty, int interval_seconds)
{
	memset(p, 0, sizeof(*p));
	p->is_tty = is_tty;
	p->interval_ms = interval_seconds * 1000;
	p->started = p->last_line = now_seconds();
}

static double progress_elapsed(const struct progress *p)
{
	return now_seconds() - p->started;
}

static double progress_rate(const struct progress *p)
{
	double elapsed = progress_elapsed(p);
	return elapsed > 0 ? (double)p->records / elapsed : 0;
}

/* ETA from the pages still to come at the page rate so far. */
static long eta_seconds(const struct progress *p)
{
	if (p->pages_done <= 0 || p->pages_total <= p->pages_done)
		return 0;
	double per_page = progress_elapsed(p) / (double)p->pages_done;
	return (long)(per_page * (double)(p->pages_total - p->pages_done) + 0.5);
}

static void draw_bar(struct progress *p)
{
	char bar[21];
	int filled = p->pages_total > 0 ? (int)(20 * p->pages_done / p->pages_total) : 0;
	for (int i = 0; i < 20; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[20] = '\0';
	long eta = eta_seconds(p);
	char line[160];
	int n = snprintf(line, sizeof(line),
			 "\r[%s] pages %ld/%ld%s  records %lld  %.0f rec/s  ETA %ld:%02ld  ", bar,
			 p->pages_done, p->pages_total, p->pages_failed ? " (failed pages)" : "",
			 p->records, progress_rate(p), eta / 60, eta % 60);
	/* the terminal bar is UI, not a log line: one write, no stdio buffer */
	if (n > 0 && write(2, line, (size_t)n) < 0)
		return;
	p->drawn = true;
}

static void progress_tick(struct progress *p)
{
	if (p->is_tty) {
		draw_bar(p);
		return;
	}
	double now = now_seconds();
	if ((now - p->last_line) * 1000 < p->interval_ms)
		return;
	p->last_line = now;
	log_info("progress: pages %ld/%ld, failed %ld, records %lld, %.0f records/s, %lld bytes, "
		 "ETA %lds",
		 p->pages_done, p->pages_total, p->pages_failed, p->records, progress_rate(p),
		 p->bytes, eta_seconds(p));
}

static void progress_end(struct progress *p)
{
	if (p->is_tty && p->drawn) {
		draw_bar(p);
		if (write(2, "\n", 1) < 0)
			return;
		p->drawn = false;
	}
}

/* ---- pages ---- */

/* One page of the pass. */
struct page_job {
	struct pipeline *pl; /* borrowed: the owner */
	long page_no;
	int attempt_id;      /* the current attempt's id (staging rows carry it) */
	int key_index;
	struct upstream_page *parser; /* owned while the page is in flight */
	long long records, valid, rejected, repaired; /* current attempt */
	bool is_over;
};

struct pipeline {
	const struct pipeline_opts *opts;
	struct pipeline_result *out;
	struct event_base *base;   /* owned */
	struct fetch *fetch;       /* owned */
	struct event *sigint, *sigterm, *ticker; /* owned */
	struct page_job **jobs;    /* owned: index page_no - 1 */
	long njobs;
	size_t accepted_cap;
	int next_attempt_id;
	bool is_stopping;          /* cancel sent: finish no more pages */
	bool key_warned;
	struct record rec;         /* owned: the item being normalized */
	struct progress progress;
};

static void set_error(struct pipeline *pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct pipeline *pl, const char *fmt, ...)
{
	if (pl->out->error[0])
		return; /* the first failure is the one reported */
	char text[sizeof(pl->out->error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_redact(text, pl->out->error, sizeof(pl->out->error));
}

/* Stop the pass: no more pages start, in-flight transfers are dropped. */
static void stop(struct pipeline *pl, enum pipeline_outcome why)
{
	if (!pl->is_stopping) {
		pl->out->outcome = why;
		pl->is_stopping = true;
		fetch_cancel(pl->fetch);
	}
}

/* ---- items ---- */

static bool on_item(void *ctx, const struct record_raw *raw, long position)
{
	struct page_job *job = ctx;
	struct pipeline *pl = job->pl;
	struct stage *stage = pl->opts->stage;
	job->records++;
	bool ok;
	if (record_normalize(raw, RECORD_MASTER, &pl->rec) == RECORD_OK) {
		job->valid++;
		job->repaired += pl->rec.coord_swapped;
		ok = stage_item(stage, job->attempt_id, job->page_no, position, &pl->rec);
	} else {
		job->rejected++;
		ok = stage_reject(stage, job->attempt_id, job->page_no, position, raw, &pl->rec);
	}
	if (!ok) {
		set_error(pl, "staging COPY failed: %s", stage_error(stage));
		stop(pl, PIPE_DATABASE);
	}
	return ok;
}

/* ---- pages ---- */

static const struct fetch_req_ops page_ops;

static bool add_page(struct pipeline *pl, long page_no)
{
	if (page_no <= pl->njobs)
		return true;
	struct page_job **grown = realloc(pl->jobs, (size_t)page_no * sizeof(*grown));
	if (!grown)
		return false;
	pl->jobs = grown;
	for (long n = pl->njobs + 1; n <= page_no; n++) {
		struct page_job *job = calloc(1, sizeof(*job));
		if (!job)
			return false;
		job->pl = pl;
		job->page_no = n;
		pl->jobs[n - 1] = job;
		pl->njobs = n;
		if (!fetch_get(pl->fetch, &page_ops, job))
			return false;
	}
	pl->progress.pages_total = pl->njobs;
	return true;
}

static void page_over(struct page_job *job, bool accepted, const char *why)
{
	struct pipeline *pl = job->pl;
	struct pipeline_result *out = pl->out;
	upstream_page_free(job->parser);
	job->parser = NULL;
	job->is_over = true;
	pl->progress.pages_done++;
	if (accepted) {
		out->pages_ok++;
		out->records += job->records;
		out->valid += job->valid;
		out->rejected += job->rejected;
		out->repaired += job->repaired;
		pl->progress.records += job->records;
		if (out->naccepted == pl->accepted_cap) {
			size_t cap = pl->accepted_cap ? pl->accepted_cap * 2 : 64;
			int *grown = realloc(out->accepted, cap * sizeof(*grown));
			if (!grown) {
				set_error(pl, "out of memory");
				stop(pl, PIPE_INTERNAL);
				return;
			}
			out->accepted = grown;
			pl->accepted_cap = cap;
		}
		out->accepted[out->naccepted++] = job->attempt_id;
		return;
	}
	out->pages_failed++;
	pl->progress.pages_failed++;
	if (!pl->is_stopping) {
		log_error("page %ld failed: %s", job->page_no, why);
		set_error(pl, "page %ld: %s", job->page_no, why);
	}
	if (job->page_no == 1)
		stop(pl, PIPE_UNAVAILABLE); /* no totalCount: nothing else can be planned */
}

static bool page_begin(void *ctx, int attempt, struct buf *url)
{
	struct page_job *job = ctx;
	struct pipeline *pl = job->pl;
	if (pl->is_stopping) {
		page_over(job, false, "stopped");
		return false;
	}
	int key_index = -1;
	const char *key = upstream_keys_take(pl->opts->keys, time(NULL), &key_index);
	if (!key) {
		if (!pl->key_warned)
			log_error("every service key's daily quota is spent (%zu keys): "
				  "stopping until the quota resets at midnight Korea time",
				  upstream_keys_count(pl->opts->keys));
		pl->key_warned = true;
		page_over(job, false, "every service key's daily quota is spent");
		return false;
	}
	job->key_index = key_index;
	job->attempt_id = ++pl->next_attempt_id;
	job->records = job->valid = job->rejected = job->repaired = 0;
	if (!job->parser)
		job->parser = upstream_page_new(on_item, job);
	else if (!upstream_page_reset(job->parser)) {
		upstream_page_free(job->parser);
		job->parser = NULL;
	}
	const struct upstream_query q = {
		.op = UPSTREAM_OP_INFO,
		.page_no = job->page_no,
		.num_of_rows = pl->opts->page_size,
	};
	if (!job->parser || !upstream_url(url, pl->opts->base_url, key, &q)) {
		set_error(pl, "out of memory starting page %ld", job->page_no);
		page_over(job, false, "out of memory");
		stop(pl, PIPE_INTERNAL);
		return false;
	}
	if (attempt > 1)
		log_debug("page %ld: attempt %d", job->page_no, attempt);
	return true;
}

static bool page_data(void *ctx, const char *bytes, size_t len)
{
	struct page_job *job = ctx;
	job->pl->out->bytes += (long long)len;
	job->pl->progress.bytes += (long long)len;
	return upstream_page_feed(job->parser, bytes, len);
}

/* A page's totalCount names the pages of the pass: page 1's plans it; a
 * later, larger one (the data grew while we paged) adds pages. */
static void plan_pages(struct pipeline *pl, long total_count)
{
	if (total_count > pl->out->total_count)
		pl->out->total_count = total_count;
	long pages = upstream_page_count(pl->out->total_count, pl->opts->page_size);
	if (pages > pl->njobs && !add_page(pl, pages)) {
		set_error(pl, "out of memory planning %ld pages", pages);
		stop(pl, PIPE_INTERNAL);
	}
}

static enum fetch_next page_end(void *ctx, const struct fetch_attempt *a)
{
	struct page_job *job = ctx;
	struct pipeline *pl = job->pl;
	if (pl->is_stopping) {
		page_over(job, false, "stopped");
		return FETCH_DONE;
	}
	struct upstream_result res;
	enum upstream_action action = upstream_attempt_finish(job->parser, a, &res);
	if (action == UPSTREAM_OK) {
		long expected = upstream_expected_items(res.env.total_count, job->page_no,
							pl->opts->page_size);
		if (res.items != expected) {
			action = UPSTREAM_RETRY;
			snprintf(res.reason, sizeof(res.reason),
				 "%ld items where totalCount %ld and %d rows a page make %ld",
				 res.items, res.env.total_count, pl->opts->page_size, expected);
		}
	}
	switch (action) {
	case UPSTREAM_OK:
		plan_pages(pl, res.env.total_count);
		page_over(job, true, NULL);
		return FETCH_DONE;
	case UPSTREAM_RETRY:
		if (a->retries_left > 0) {
			log_warn("page %ld attempt %d: %s; retrying", job->page_no, a->attempt,
				 res.reason);
			return FETCH_RETRY;
		}
		page_over(job, false, res.reason);
		return FETCH_DONE;
	case UPSTREAM_NEXT_KEY:
		log_warn("page %ld: service key #%d is out of quota (%s); trying the next key",
			 job->page_no, job->key_index + 1, res.reason);
		upstream_keys_exhausted(pl->opts->keys, job->key_index, time(NULL));
		return FETCH_RETRY_NOW;
	case UPSTREAM_CONFIG:
		log_error("page %ld: %s: configuration error (service key or UPSTREAM_URL); "
			  "stopping",
			  job->page_no, res.reason);
		set_error(pl, "configuration: %s", res.reason);
		stop(pl, PIPE_CONFIG);
		page_over(job, false, res.reason);
		return FETCH_DONE;
	case UPSTREAM_FAIL:
		page_over(job, false, res.reason);
		return FETCH_DONE;
	}
	abort();
}

static const struct fetch_req_ops page_ops = {
	.begin = page_begin,
	.data = page_data,
	.end = page_end,
};

/* ---- loop ---- */

static void on_idle(void *ctx)
{
	struct pipeline *pl = ctx;
	event_base_loopexit(pl->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct pipeline *pl = arg;
	log_warn("signal %d: stopping the fetch; nothing will be merged", (int)sig);
	pl->out->signal = (int)sig;
	set_error(pl, "interrupted by signal %d", (int)sig);
	stop(pl, PIPE_INTERRUPTED);
	/* a second signal ends the process at once, the default way */
	signal((int)sig, SIG_DFL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline *pl = arg;
	progress_tick(&pl->progress);
}

static void pipeline_cleanup(struct pipeline *pl)
{
	for (long i = 0; i < pl->njobs; i++) {
		if (pl->jobs[i])
			upstream_page_free(pl->jobs[i]->parser);
		free(pl->jobs[i]);
	}
	free(pl->jobs);
	fetch_free(pl->fetch);
	if (pl->sigint)
		event_free(pl->sigint);
	if (pl->sigterm)
		event_free(pl->sigterm);
	if (pl->ticker)
		event_free(pl->ticker);
	if (pl->base)
		event_base_free(pl->base);
	record_free(&pl->rec);
}

bool pipeline_run(const struct pipeline_opts *opts, struct pipeline_result *out)
{
	memset(out, 0, sizeof(*out));
	struct pipeline pl = {.opts = opts, .out = out};
	record_init(&pl.rec);
	progress_init(&pl.progress, opts->progress_tty, opts->progress_seconds);
	const struct fetch_opts fo = {
		.max_active = opts->concurrency,
		.connect_timeout_ms = opts->connect_timeout_ms,
		.low_speed_seconds = opts->low_speed_seconds,
		.low_speed_bytes = 1024,
		.total_timeout_ms = opts->page_timeout_s * 1000,
		.max_attempts = opts->max_attempts,
		.backoff_first_ms = opts->backoff_first_ms,
		.backoff_max_ms = opts->backoff_max_ms,
		.user_agent = "evcharger-ingestd",
	};
	struct timeval tick = {0, opts->progress_tty ? 500000 : 0};
	if (!opts->progress_tty)
		tick.tv_sec = 1;
	if (!(pl.base = event_base_new()) || !(pl.fetch = fetch_new(pl.base, &fo)) ||
	    !(pl.sigint = evsignal_new(pl.base, SIGINT, on_signal, &pl)) ||
	    !(pl.sigterm = evsignal_new(pl.base, SIGTERM, on_signal, &pl)) ||
	    !(pl.ticker = event_new(pl.base, -1, EV_PERSIST, on_tick, &pl)) ||
	    event_add(pl.sigint, NULL) != 0 || event_add(pl.sigterm, NULL) != 0 ||
	    event_add(pl.ticker, &tick) != 0) {
		pipeline_cleanup(&pl);
		snprintf(out->error, sizeof(out->error), "could not set up the event loop");
		out->outcome = PIPE_INTERNAL;
		return false;
	}
	fetch_on_idle(pl.fetch, on_idle, &pl);
	out->outcome = PIPE_COMPLETE;
	if (!add_page(&pl, 1)) {
		pipeline_cleanup(&pl);
		out->outcome = PIPE_INTERNAL;
		return false;
	}
	pl.progress.pages_total = 0; /* unknown until page 1 answers */
	event_base_dispatch(pl.base);
	progress_end(&pl.progress);

	out->pages_total = pl.njobs;
	out->attempt_ids = pl.next_attempt_id;
	out->attempts = (long long)fetch_attempts(pl.fetch);
	out->retries = (long long)fetch_retries(pl.fetch);
	if (out->outcome == PIPE_COMPLETE && out->pages_failed > 0)
		out->outcome = PIPE_PARTIAL;
	/* the loop ended without every page over: a bug or a lost event */
	for (long i = 0; i < pl.njobs && out->outcome == PIPE_COMPLETE; i++)
		if (!pl.jobs[i]->is_over) {
			out->outcome = PIPE_INTERNAL;
			snprintf(out->error, sizeof(out->error), "page %ld never finished", i + 1);
		}
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	pipeline_cleanup(&pl);
	return true;
}

void pipeline_result_free(struct pipeline_result *r)
{
	free(r->accepted);
	r->accepted = NULL;
	r->naccepted = 0;
}
