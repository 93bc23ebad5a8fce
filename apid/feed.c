#include "feed.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rds.h"
#include "rkeys.h"

struct run {
	int64_t id, finished_ms;
	struct feed_station_change *items; /* owned */
	size_t n;
	bool reload;
};

struct feed {
	size_t retain;
	feed_notify_fn notify;
	void *notify_arg;
	pthread_mutex_t lock;	/* guards everything below */
	struct feed_entry *ring; /* `retain` slots, oldest at `start` */
	size_t start, count;
	uint64_t floor_ms, floor_seq; /* every entry after this is retained */
	bool loaded;		      /* the history was read once */
	bool gap_check;		      /* after a reconnect to an empty stream */
	struct run runs[FEED_RUNS_KEPT];
	size_t nruns;
	int64_t run_floor; /* every run after this is retained */
	int64_t last_run;  /* -1: none yet */
	uint64_t total;	   /* status entries ever appended */
};

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

static struct feed_entry *slot_at(struct feed *f, size_t i)
{
	return &f->ring[(f->start + i) % f->retain];
}

/* Counts what it appends in `total`. */
static void ring_append(struct feed *f, const struct feed_entry *e)
{
	uint64_t ms = e->ms, seq = e->seq;
	if (f->count > 0) {
		struct feed_entry *last = slot_at(f, f->count - 1);
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
	if (f->count == f->retain) {
		struct feed_entry *old = slot_at(f, 0);
		f->floor_ms = old->ms;
		f->floor_seq = old->seq;
		f->start = (f->start + 1) % f->retain;
		f->count--;
	}
	*slot_at(f, f->count++) = *e;
	f->total++;
}

/* First slot after (ms, seq). */
static size_t ring_after(struct feed *f, uint64_t ms, uint64_t seq)
{
	size_t lo = 0, hi = f->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct feed_entry *s = slot_at(f, mid);
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
		struct feed_entry *last = slot_at(f, f->count - 1);
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
			struct feed_entry *s = slot_at(f, i++);
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

/* ---- the follower's side ---- */

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

void feed_append(struct feed *f, const struct feed_entry *entries, size_t n)
{
	size_t before;
	pthread_mutex_lock(&f->lock);
	before = f->total;
	for (size_t i = 0; i < n; i++)
		ring_append(f, &entries[i]);
	bool added = f->total != before;
	pthread_mutex_unlock(&f->lock);
	if (added && f->notify)
		f->notify(f->notify_arg);
}

/* The first connect: the last `retain` entries, oldest first. */
static bool load_history(struct feed *f, struct rds *redis, char pos[FEED_STREAM_ID_MAX],
			 char *err, size_t errlen)
{
	char count[24];
	snprintf(count, sizeof(count), "%zu", f->retain);
	const char *argv[] = {"XREVRANGE", RKEYS_CHANGES, "+", "-", "COUNT", count};
	redisReply *reply = rds_command(redis, 6, argv, NULL, err, errlen);
	if (!reply)
		return false;
	if (reply->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "XREVRANGE %s: unexpected reply", RKEYS_CHANGES);
		freeReplyObject(reply);
		return false;
	}
	size_t n = reply->elements;
	snprintf(pos, FEED_STREAM_ID_MAX, "0-0");
	/* the newest entry (first in the reply) is where following starts,
	 * whether or not it is a well-formed status change */
	if (n > 0 && reply->element[0]->type == REDIS_REPLY_ARRAY &&
	    reply->element[0]->elements >= 1 &&
	    reply->element[0]->element[0]->type == REDIS_REPLY_STRING)
		snprintf(pos, FEED_STREAM_ID_MAX, "%s", reply->element[0]->element[0]->str);
	pthread_mutex_lock(&f->lock);
	for (size_t i = n; i-- > 0;) {
		struct feed_entry e;
		if (feed_parse_entry(reply->element[i], &e.ms, &e.seq, &e.ev))
			ring_append(f, &e);
	}
	/* fewer than were asked for and below the stream's MAXLEN: the stream
	 * was never trimmed, every entry ever written is here */
	if (f->count > 0 && (n >= f->retain || n >= RKEYS_CHANGES_MAXLEN)) {
		struct feed_entry *first = slot_at(f, 0);
		f->floor_ms = first->ms;
		f->floor_seq = first->seq;
	}
	f->loaded = true;
	pthread_mutex_unlock(&f->lock);
	freeReplyObject(reply);
	log_info("change feed: %zu entries of history loaded", n);
	if (f->notify)
		f->notify(f->notify_arg);
	return true;
}

/* A reconnect: where the stream begins now tells whether entries after
 * `pos` were lost meanwhile. */
static bool check_gap(struct feed *f, struct rds *redis, const char *pos, char *err,
		      size_t errlen)
{
	const char *argv[] = {"XRANGE", RKEYS_CHANGES, "-", "+", "COUNT", "1"};
	redisReply *reply = rds_command(redis, 6, argv, NULL, err, errlen);
	if (!reply)
		return false;
	if (reply->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "XRANGE %s: unexpected reply", RKEYS_CHANGES);
		freeReplyObject(reply);
		return false;
	}
	uint64_t first_ms, first_seq, last_ms, last_seq;
	bool have_last = feed_parse_stream_id(pos, &last_ms, &last_seq);
	pthread_mutex_lock(&f->lock);
	if (reply->elements == 0) {
		f->gap_check = true; /* Redis lost the stream: decided at the next entry */
	} else if (reply->element[0]->type == REDIS_REPLY_ARRAY &&
		   reply->element[0]->elements >= 1 &&
		   reply->element[0]->element[0]->type == REDIS_REPLY_STRING &&
		   feed_parse_stream_id(reply->element[0]->element[0]->str, &first_ms,
					&first_seq) &&
		   have_last && id_cmp(first_ms, first_seq, last_ms, last_seq) > 0) {
		f->gap_check = true; /* trimmed past our position */
	}
	pthread_mutex_unlock(&f->lock);
	freeReplyObject(reply);
	return true;
}

bool feed_on_connect(struct feed *f, struct rds *redis, char pos[FEED_STREAM_ID_MAX], char *err,
	       size_t errlen)
{
	pthread_mutex_lock(&f->lock);
	bool loaded = f->loaded;
	pthread_mutex_unlock(&f->lock);
	return loaded ? check_gap(f, redis, pos, err, errlen)
		      : load_history(f, redis, pos, err, errlen);
}

struct feed *feed_new(size_t retain, feed_notify_fn notify, void *arg)
{
	struct feed *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->retain = retain < 1 ? 1 : retain;
	f->notify = notify;
	f->notify_arg = arg;
	f->last_run = -1;
	pthread_mutex_init(&f->lock, NULL);
	f->ring = calloc(f->retain, sizeof(*f->ring));
	if (!f->ring) {
		feed_free(f);
		return NULL;
	}
	return f;
}

void feed_free(struct feed *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nruns; i++)
		run_free(&f->runs[i]);
	free(f->ring);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
