#include "feed.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rds.h"
#include "rkeys.h"

/* XREAD waits this long: also how long stop may take. */
#define BLOCK_MS       "250"
#define READ_COUNT     "1000"
#define RETRY_FIRST_MS 250
#define RETRY_MAX_MS   5000
#define REPEAT_LOG_MS  60000

struct slot {
	uint64_t ms, seq;
	struct feed_event ev;
};

struct run {
	int64_t id, finished_ms;
	struct feed_station_change *items; /* owned */
	size_t n;
	bool reload;
};

struct feed {
	struct feed_config cfg;
	const struct meters *meters; /* borrowed */
	feed_notify_fn notify;
	void *notify_arg;
	pthread_t thread;
	bool started;
	int wake_fd;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards everything below up to the thread-only part */
	struct slot *ring;    /* cfg.retain slots, oldest at `start` */
	size_t start, count;
	uint64_t floor_ms, floor_seq; /* every entry after this is retained */
	bool loaded;		      /* the history was read once */
	bool gap_check;		      /* after a reconnect to an empty stream */
	struct run runs[FEED_RUNS_KEPT];
	size_t nruns;
	int64_t run_floor; /* every run after this is retained */
	int64_t last_run;  /* -1: none yet */
	/* thread-only */
	struct rds *redis;
	char stream_id[64]; /* the last entry read */
	int64_t retry_ms;
	char last_error[512];
	int64_t last_logged_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int id_cmp(uint64_t ams, uint64_t aseq, uint64_t bms, uint64_t bseq)
{
	if (ams != bms)
		return ams < bms ? -1 : 1;
	return aseq < bseq ? -1 : aseq > bseq;
}

/* ---- cursors ---- */

bool feed_parse_stream_id(const char *text, uint64_t *ms, uint64_t *seq)
{
	char *end = NULL;
	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	unsigned long long a = strtoull(text, &end, 10);
	if (errno || *end != '-' || end[1] < '0' || end[1] > '9')
		return false;
	const char *rest = end + 1;
	unsigned long long b = strtoull(rest, &end, 10);
	if (errno || *end)
		return false;
	*ms = a;
	*seq = b;
	return true;
}

bool feed_cursor_parse(const char *text, struct feed_cursor *out)
{
	const char *dot = strchr(text, '.');
	if (!dot || dot - text >= 48)
		return false;
	char id[48];
	memcpy(id, text, (size_t)(dot - text));
	id[dot - text] = '\0';
	if (!feed_parse_stream_id(id, &out->ms, &out->seq))
		return false;
	const char *r = dot + 1;
	if (*r < '0' || *r > '9' || strlen(r) > 18)
		return false;
	char *end = NULL;
	errno = 0;
	long long run = strtoll(r, &end, 10);
	if (errno || *end)
		return false;
	out->run = run;
	return true;
}

size_t feed_cursor_format(const struct feed_cursor *c, char out[FEED_CURSOR_MAX])
{
	int n = snprintf(out, FEED_CURSOR_MAX, "%" PRIu64 "-%" PRIu64 ".%" PRId64, c->ms, c->seq,
			 c->run);
	return n < 0 ? 0 : (size_t)n;
}

/* ---- the logs (lock held) ---- */

static struct slot *slot_at(struct feed *f, size_t i)
{
	return &f->ring[(f->start + i) % f->cfg.retain];
}

static void ring_append(struct feed *f, uint64_t ms, uint64_t seq, const struct feed_event *ev)
{
	if (f->count > 0) {
		struct slot *last = slot_at(f, f->count - 1);
		if (id_cmp(ms, seq, last->ms, last->seq) <= 0)
			return; /* read twice (a reload overlapping the follow) */
	}
	if (f->gap_check) {
		/* Redis came back empty: what was written between our last
		 * read and the loss is gone; cursors before this entry cannot
		 * be served */
		f->gap_check = false;
		f->floor_ms = ms;
		f->floor_seq = seq;
		if (seq > 0)
			f->floor_seq = seq - 1;
		else if (ms > 0)
			f->floor_ms = ms - 1, f->floor_seq = UINT64_MAX;
	}
	if (f->count == f->cfg.retain) {
		struct slot *old = slot_at(f, 0);
		f->floor_ms = old->ms;
		f->floor_seq = old->seq;
		f->start = (f->start + 1) % f->cfg.retain;
		f->count--;
	}
	struct slot *s = slot_at(f, f->count++);
	s->ms = ms;
	s->seq = seq;
	s->ev = *ev;
}

/* First slot after (ms, seq). */
static size_t ring_after(struct feed *f, uint64_t ms, uint64_t seq)
{
	size_t lo = 0, hi = f->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct slot *s = slot_at(f, mid);
		if (id_cmp(s->ms, s->seq, ms, seq) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void run_free(struct run *r)
{
	free(r->items);
	memset(r, 0, sizeof(*r));
}

int64_t feed_last_run(struct feed *f)
{
	pthread_mutex_lock(&f->lock);
	int64_t id = f->last_run;
	pthread_mutex_unlock(&f->lock);
	return id;
}

bool feed_add_run(struct feed *f, int64_t run_id, int64_t finished_ms,
		  const struct feed_station_change *items, size_t n, bool reload, int64_t floor_run)
{
	struct feed_station_change *copy = NULL;
	if (n > 0 && !reload) {
		copy = malloc(n * sizeof(*copy));
		if (!copy)
			return false;
		memcpy(copy, items, n * sizeof(*copy));
	}
	pthread_mutex_lock(&f->lock);
	if (run_id <= f->last_run) {
		pthread_mutex_unlock(&f->lock);
		free(copy);
		return true;
	}
	if (f->last_run < 0)
		f->run_floor = floor_run;
	if (f->nruns == FEED_RUNS_KEPT) {
		f->run_floor = f->runs[0].id;
		run_free(&f->runs[0]);
		memmove(f->runs, f->runs + 1, (FEED_RUNS_KEPT - 1) * sizeof(f->runs[0]));
		f->nruns--;
	}
	f->runs[f->nruns++] = (struct run){run_id, finished_ms, copy, reload ? 0 : n, reload};
	f->last_run = run_id;
	pthread_mutex_unlock(&f->lock);
	if (f->notify)
		f->notify(f->notify_arg);
	return true;
}

static void head_locked(struct feed *f, struct feed_cursor *out)
{
	if (f->count > 0) {
		struct slot *last = slot_at(f, f->count - 1);
		out->ms = last->ms;
		out->seq = last->seq;
	} else {
		out->ms = f->floor_ms;
		out->seq = f->floor_seq;
	}
	out->run = f->last_run < 0 ? 0 : f->last_run;
}

bool feed_head(struct feed *f, struct feed_cursor *out)
{
	pthread_mutex_lock(&f->lock);
	bool loaded = f->loaded;
	if (loaded)
		head_locked(f, out);
	pthread_mutex_unlock(&f->lock);
	return loaded;
}

enum feed_read feed_read(struct feed *f, struct feed_cursor *pos, size_t max, feed_emit_fn emit,
			 void *arg, size_t *emitted, struct feed_cursor *oldest)
{
	*emitted = 0;
	pthread_mutex_lock(&f->lock);
	if (!f->loaded) {
		pthread_mutex_unlock(&f->lock);
		return FEED_READ_NOT_READY;
	}
	if (id_cmp(pos->ms, pos->seq, f->floor_ms, f->floor_seq) < 0 ||
	    (f->last_run >= 0 && pos->run < f->run_floor)) {
		*oldest = (struct feed_cursor){f->floor_ms, f->floor_seq, f->run_floor};
		pthread_mutex_unlock(&f->lock);
		return FEED_READ_GONE;
	}
	size_t i = ring_after(f, pos->ms, pos->seq), r = 0;
	while (r < f->nruns && f->runs[r].id <= pos->run)
		r++;
	while (*emitted < max && (i < f->count || r < f->nruns)) {
		bool status = i < f->count && (r == f->nruns || (int64_t)slot_at(f, i)->ms <=
									f->runs[r].finished_ms);
		if (status) {
			struct slot *s = slot_at(f, i++);
			pos->ms = s->ms;
			pos->seq = s->seq;
			emit(arg, &s->ev, pos);
			(*emitted)++;
			continue;
		}
		const struct run *run = &f->runs[r++];
		pos->run = run->id;
		struct feed_event ev = {
			.kind = FEED_RELOAD, .run_id = run->id, .at_ms = run->finished_ms};
		if (run->reload) {
			emit(arg, &ev, pos);
			(*emitted)++;
		}
		for (size_t k = 0; k < run->n; k++) {
			ev.kind = run->items[k].kind;
			memcpy(ev.stat_id, run->items[k].stat_id, FEED_ID_MAX);
			emit(arg, &ev, pos);
			(*emitted)++;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return FEED_READ_OK;
}

/* ---- the follower ---- */

static void failure(struct feed *f, const char *what, const char *why)
{
	char text[512];
	snprintf(text, sizeof(text), "%s: %s", what, why);
	int64_t now = mono_ms();
	if (strcmp(text, f->last_error) != 0 || now - f->last_logged_ms > REPEAT_LOG_MS) {
		log_warn("change feed: %s", text);
		snprintf(f->last_error, sizeof(f->last_error), "%s", text);
		f->last_logged_ms = now;
	}
	metric_inc(f->meters->redis_errors);
}

static void wait_ms(struct feed *f, int64_t ms)
{
	struct pollfd fd = {.fd = f->wake_fd, .events = POLLIN};
	if (poll(&fd, 1, (int)ms) > 0) {
		uint64_t v;
		if (read(f->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_debug("change feed: wake read: %s", strerror(errno));
	}
}

bool feed_parse_entry(const redisReply *entry, uint64_t *ms, uint64_t *seq, struct feed_event *ev)
{
	if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
	    entry->element[0]->type != REDIS_REPLY_STRING ||
	    entry->element[1]->type != REDIS_REPLY_ARRAY ||
	    !feed_parse_stream_id(entry->element[0]->str, ms, seq))
		return false;
	const redisReply *fields = entry->element[1];
	const char *stat_id = NULL, *chger_id = NULL, *stat = NULL, *when = NULL;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i], *v = fields->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "s") == 0)
			stat_id = v->str;
		else if (strcmp(k->str, "c") == 0)
			chger_id = v->str;
		else if (strcmp(k->str, "st") == 0)
			stat = v->str;
		else if (strcmp(k->str, "t") == 0)
			when = v->str;
	}
	if (!stat_id || !chger_id || !stat || !when || strlen(stat_id) >= FEED_ID_MAX ||
	    strlen(chger_id) >= FEED_ID_MAX)
		return false;
	*ev = (struct feed_event){.kind = FEED_STATUS,
				  .stat = (int)strtol(stat, NULL, 10),
				  .stat_unix = strtoll(when, NULL, 10),
				  .at_ms = (int64_t)*ms};
	memcpy(ev->stat_id, stat_id, strlen(stat_id) + 1);
	memcpy(ev->chger_id, chger_id, strlen(chger_id) + 1);
	return true;
}

/* Append a list of entries; true when any was new. Remembers the last id
 * read even for entries that are not status changes. */
static size_t append_entries(struct feed *f, const redisReply *list)
{
	size_t added = 0;
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *e = list->element[i];
		uint64_t ms, seq;
		struct feed_event ev;
		if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
		    e->element[0]->type == REDIS_REPLY_STRING)
			snprintf(f->stream_id, sizeof(f->stream_id), "%s", e->element[0]->str);
		if (feed_parse_entry(e, &ms, &seq, &ev)) {
			ring_append(f, ms, seq, &ev);
			added++;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return added;
}

/* First connect: the last `retain` entries. Reconnect: where the stream
 * begins now tells whether entries were lost meanwhile. */
static bool sync_history(struct feed *f)
{
	char err[256];
	if (!f->loaded) {
		char count[24];
		snprintf(count, sizeof(count), "%zu", f->cfg.retain);
		const char *argv[] = {"XREVRANGE", RKEYS_CHANGES, "+", "-", "COUNT", count};
		redisReply *reply = rds_command(f->redis, 6, argv, NULL, err, sizeof(err));
		if (!reply || reply->type != REDIS_REPLY_ARRAY) {
			failure(f, "reading the change stream", reply ? "unexpected reply" : err);
			freeReplyObject(reply);
			return false;
		}
		/* newest first: reverse in place */
		for (size_t i = 0, j = reply->elements; i + 1 < j; i++, j--) {
			redisReply *t = reply->element[i];
			reply->element[i] = reply->element[j - 1];
			reply->element[j - 1] = t;
		}
		size_t n = reply->elements;
		append_entries(f, reply);
		pthread_mutex_lock(&f->lock);
		/* fewer than were asked for and below the stream's MAXLEN: the
		 * stream was never trimmed, every entry ever written is here */
		if (n > 0 && (n >= f->cfg.retain || n >= RKEYS_CHANGES_MAXLEN)) {
			struct slot *first = slot_at(f, 0);
			f->floor_ms = first->ms;
			f->floor_seq = first->seq;
		}
		if (n == 0)
			snprintf(f->stream_id, sizeof(f->stream_id), "0-0");
		f->loaded = true;
		pthread_mutex_unlock(&f->lock);
		freeReplyObject(reply);
		log_info("change feed: %zu entries of history loaded", n);
		if (f->notify)
			f->notify(f->notify_arg);
		return true;
	}
	const char *argv[] = {"XRANGE", RKEYS_CHANGES, "-", "+", "COUNT", "1"};
	redisReply *reply = rds_command(f->redis, 6, argv, NULL, err, sizeof(err));
	if (!reply || reply->type != REDIS_REPLY_ARRAY) {
		failure(f, "reading the change stream", reply ? "unexpected reply" : err);
		freeReplyObject(reply);
		return false;
	}
	uint64_t first_ms, first_seq, last_ms, last_seq;
	bool have_last = feed_parse_stream_id(f->stream_id, &last_ms, &last_seq);
	pthread_mutex_lock(&f->lock);
	if (reply->elements == 0) {
		f->gap_check = true; /* Redis lost the stream: decided at the next entry */
	} else if (reply->element[0]->type == REDIS_REPLY_ARRAY &&
		   reply->element[0]->elements >= 1 &&
		   feed_parse_stream_id(reply->element[0]->element[0]->str, &first_ms,
					&first_seq) &&
		   have_last && id_cmp(first_ms, first_seq, last_ms, last_seq) > 0) {
		f->gap_check = true; /* trimmed past our position */
	}
	pthread_mutex_unlock(&f->lock);
	freeReplyObject(reply);
	return true;
}

static bool follow(struct feed *f)
{
	char err[256];
	const char *argv[] = {"XREAD",	"COUNT",   READ_COUNT,	  "BLOCK",
			      BLOCK_MS, "STREAMS", RKEYS_CHANGES, f->stream_id};
	redisReply *reply = rds_command(f->redis, 8, argv, NULL, err, sizeof(err));
	if (!reply) {
		failure(f, "following the change stream", err);
		return false;
	}
	size_t added = 0;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
		const redisReply *stream = reply->element[0];
		if (stream->type == REDIS_REPLY_ARRAY && stream->elements == 2 &&
		    stream->element[1]->type == REDIS_REPLY_ARRAY)
			added = append_entries(f, stream->element[1]);
	}
	freeReplyObject(reply);
	if (added && f->notify)
		f->notify(f->notify_arg);
	return true;
}

static void *feed_main(void *arg)
{
	struct feed *f = arg;
	log_ctx_set("thread", "feed");
	while (!atomic_load(&f->stop)) {
		if (!f->redis) {
			char err[256];
			int timeout = f->cfg.timeout_ms > 1000 ? f->cfg.timeout_ms : 1000;
			f->redis = rds_new(f->cfg.redis_url, timeout, err, sizeof(err));
			if (!f->redis || !sync_history(f)) {
				if (!f->redis)
					failure(f, "Redis unavailable", err);
				rds_free(f->redis);
				f->redis = NULL;
				wait_ms(f, f->retry_ms);
				f->retry_ms = f->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
									     : f->retry_ms * 2;
				continue;
			}
			if (f->last_error[0])
				log_info("change feed: Redis reachable again");
			f->last_error[0] = '\0';
			f->retry_ms = RETRY_FIRST_MS;
		}
		if (!follow(f)) {
			rds_free(f->redis);
			f->redis = NULL;
		}
	}
	rds_free(f->redis);
	f->redis = NULL;
	return NULL;
}

struct feed *feed_start(const struct feed_config *cfg, const struct meters *meters,
			feed_notify_fn notify, void *arg)
{
	struct feed *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->cfg = *cfg;
	if (f->cfg.retain < 1)
		f->cfg.retain = 1;
	f->meters = meters;
	f->notify = notify;
	f->notify_arg = arg;
	f->last_run = -1;
	f->retry_ms = RETRY_FIRST_MS;
	snprintf(f->stream_id, sizeof(f->stream_id), "0-0");
	f->wake_fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	f->ring = calloc(f->cfg.retain, sizeof(*f->ring));
	f->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!f->ring || f->wake_fd < 0)
		goto fail;
	if (cfg->redis_url && cfg->redis_url[0]) {
		if (pthread_create(&f->thread, NULL, feed_main, f) != 0)
			goto fail;
		f->started = true;
	}
	return f;
fail:
	feed_free(f);
	return NULL;
}

void feed_stop(struct feed *f)
{
	if (!f || !f->started)
		return;
	atomic_store(&f->stop, true);
	uint64_t one = 1;
	if (write(f->wake_fd, &one, sizeof(one)) < 0)
		log_debug("change feed: wake: %s", strerror(errno));
	pthread_join(f->thread, NULL);
	f->started = false;
}

void feed_free(struct feed *f)
{
	if (!f)
		return;
	feed_stop(f);
	if (f->wake_fd >= 0)
		close(f->wake_fd);
	for (size_t i = 0; i < f->nruns; i++)
		run_free(&f->runs[i]);
	free(f->ring);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
