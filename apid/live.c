#include "live.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "feed.h"
#include "log.h"
#include "rds.h"
#include "rkeys.h"

/* XREAD waits this long for new entries: also the longest a new snapshot
 * waits to be taken while Redis is quiet. */
#define BLOCK_MS "250"
/* Entries per XREAD; fewer in a reply means the stream was read to its end. */
#define READ_COUNT	1000
#define READ_COUNT_TEXT "1000"
/* Stations per pipelined batch of GETs. */
#define LOAD_BATCH 1000
/* Reconnect backoff: 250 ms doubling to 5 s. */
#define RETRY_FIRST_MS 250
#define RETRY_MAX_MS   5000
#define REPEAT_LOG_MS  60000

struct live {
	struct live_config cfg;
	const struct meters *meters; /* borrowed */
	live_publish_fn publish;
	void *publish_arg;
	pthread_t thread;
	bool started;
	int wake_fd;
	atomic_bool stop;
	pthread_mutex_t lock;	   /* guards pending */
	struct snap *pending;	   /* offered, not yet taken; owned reference */
	_Atomic int64_t synced_ms; /* CLOCK_MONOTONIC ms of the last read to the end; -1 */
	atomic_bool connected;
	/* thread-only */
	struct snap *cur; /* the snapshot kept current; owned reference */
	struct rds *redis;
	bool need_sync;			     /* connected: the feed's history or gap check first */
	bool need_load;			     /* every station's value into cur */
	char stream_id[FEED_STREAM_ID_MAX];  /* the last entry read (or seen before a load) */
	struct feed_entry *batch;	     /* READ_COUNT: one XREAD's entries, parsed */
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

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void failure(struct live *l, const char *fmt, const char *why)
{
	char text[512];
	snprintf(text, sizeof(text), "%s: %s", fmt, why);
	int64_t now = mono_ms();
	if (strcmp(text, l->last_error) != 0 || now - l->last_logged_ms > REPEAT_LOG_MS) {
		log_warn("live state: %s", text);
		snprintf(l->last_error, sizeof(l->last_error), "%s", text);
		l->last_logged_ms = now;
	}
	metric_inc(l->meters->redis_errors);
}

static void disconnect(struct live *l)
{
	rds_free(l->redis);
	l->redis = NULL;
	atomic_store(&l->connected, false);
	metric_set(l->meters->live_connected, 0);
}

static void mark_synced(struct live *l)
{
	atomic_store(&l->synced_ms, mono_ms());
}

/* Sleep up to ms, returning early for stop or an offered snapshot. */
static void wait_ms(struct live *l, int64_t ms)
{
	struct pollfd fd = {.fd = l->wake_fd, .events = POLLIN};
	if (poll(&fd, 1, (int)ms) > 0) {
		uint64_t v;
		if (read(l->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_debug("live state: wake read: %s", strerror(errno));
	}
}

/* ---- applying ---- */

/* One charger of station st's value (rkeys.h). */
static bool apply_charger(struct snap *s, uint32_t st, const struct rkeys_charger *charger)
{
	const struct snap_station *station = &s->stations[st];
	for (uint32_t i = 0; i < station->charger_count; i++) {
		uint32_t c = station->first_charger + i;
		const char *id = snap_text(s, s->chargers[c].id);
		if (strlen(id) == charger->id_len && memcmp(id, charger->id, charger->id_len) == 0)
			return snap_live_apply(s, c, charger->stat, charger->updated);
	}
	return false; /* a charger the master data does not know (yet) */
}

struct load_batch {
	struct live *l;
	struct snap *snap;
	const uint32_t *stations; /* station numbers of this batch, in command order */
	size_t applied;
};

/* A station's value; nil (none), another type (an older layout, until
 * realtimed rewrites it) and what is malformed from there on are skipped. */
static void on_value(void *arg, size_t index, const redisReply *reply)
{
	struct load_batch *batch = arg;
	if (reply->type != REDIS_REPLY_STRING)
		return;
	struct rkeys_avail av;
	struct rkeys_charger charger;
	size_t at;
	if (!rkeys_live_head(reply->str, reply->len, &av, &at))
		return;
	while (rkeys_live_next(reply->str, reply->len, &at, &charger) == 1)
		if (apply_charger(batch->snap, batch->stations[index], &charger))
			batch->applied++;
}

/* GET ev:st:{id} for the given stations (all when list is NULL). */
static bool load_stations(struct live *l, struct snap *s, const uint32_t *list, size_t n,
			  size_t *applied)
{
	uint32_t batch_ids[LOAD_BATCH];
	size_t done = 0;
	*applied = 0;
	while (done < n) {
		size_t k = 0;
		for (; k < LOAD_BATCH && done + k < n; k++) {
			uint32_t st = list ? list[done + k] : (uint32_t)(done + k);
			batch_ids[k] = st;
			char key[RKEYS_KEY_MAX];
			rkeys_station(key, sizeof(key), snap_text(s, s->stations[st].id));
			const char *argv[] = {"GET", key};
			if (!rds_append(l->redis, 2, argv, NULL)) {
				failure(l, "load", "cannot queue a command");
				return false;
			}
		}
		struct load_batch batch = {l, s, batch_ids, 0};
		char err[256];
		enum rds_status st = rds_flush(l->redis, on_value, &batch, NULL, err, sizeof(err));
		if (st == RDS_IO_ERROR) {
			failure(l, "load", err);
			return false;
		}
		*applied += batch.applied;
		done += k;
	}
	return true;
}

/* Apply one parsed stream entry to the live state. */
static void apply_entry(struct live *l, const struct feed_entry *e)
{
	uint32_t c;
	if (!l->cur || !snap_find_charger(l->cur, e->ev.stat_id, e->ev.chger_id, &c))
		return;
	if (snap_live_apply(l->cur, c, e->ev.stat, e->ev.stat_unix))
		metric_inc(l->meters->live_changes);
	/* the entry id's first part is the XADD time in ms */
	if (e->ms > 0)
		metric_observe(l->meters->live_apply_delay,
			       (double)(wall_ms() - (int64_t)e->ms) / 1000.0);
}

/* ---- the follower ---- */

static bool connect_redis(struct live *l)
{
	char err[256];
	int timeout = l->cfg.timeout_ms > 1000 ? l->cfg.timeout_ms : 1000;
	l->redis = rds_new(l->cfg.redis_url, timeout, err, sizeof(err));
	if (!l->redis) {
		failure(l, "Redis unavailable", err);
		return false;
	}
	atomic_store(&l->connected, true);
	metric_set(l->meters->live_connected, 1);
	if (l->last_error[0])
		log_info("live state: Redis reachable again");
	l->last_error[0] = '\0';
	l->need_sync = true;
	l->need_load = true;
	l->retry_ms = RETRY_FIRST_MS;
	return true;
}

/* The stream position: the feed's history (first connect) or the last
 * entry read before the connection was lost (the feed checks for a gap). */
static bool sync_stream(struct live *l)
{
	char err[256];
	if (!feed_on_connect(l->cfg.feed, l->redis, l->stream_id, err, sizeof(err))) {
		failure(l, "reading the change stream", err);
		return false;
	}
	l->need_sync = false;
	return true;
}

/* Every station's value into cur, after the position was taken. */
static bool load_all(struct live *l)
{
	size_t applied = 0;
	int64_t t0 = mono_ms();
	if (!load_stations(l, l->cur, NULL, l->cur->nstations, &applied))
		return false;
	metric_inc(l->meters->live_resyncs);
	log_info("live state: loaded %zu charger states for %u stations in %lld ms", applied,
		 l->cur->nstations, (long long)(mono_ms() - t0));
	l->need_load = false;
	mark_synced(l);
	return true;
}

/* One XREAD: every entry to the live state and to the feed. */
static bool follow(struct live *l)
{
	char err[256];
	const char *argv[] = {"XREAD",	"COUNT",   READ_COUNT_TEXT, "BLOCK",
			      BLOCK_MS, "STREAMS", RKEYS_CHANGES,   l->stream_id};
	redisReply *reply = rds_command(l->redis, 8, argv, NULL, err, sizeof(err));
	if (!reply) {
		failure(l, "following the change stream", err);
		return false;
	}
	size_t entries = 0, parsed = 0;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
		const redisReply *stream = reply->element[0];
		if (stream->type == REDIS_REPLY_ARRAY && stream->elements == 2 &&
		    stream->element[1]->type == REDIS_REPLY_ARRAY) {
			const redisReply *list = stream->element[1];
			entries = list->elements;
			for (size_t i = 0; i < list->elements && parsed < READ_COUNT; i++) {
				const redisReply *e = list->element[i];
				/* the position moves past entries that are not
				 * status changes too */
				if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
				    e->element[0]->type == REDIS_REPLY_STRING)
					snprintf(l->stream_id, sizeof(l->stream_id), "%s",
						 e->element[0]->str);
				struct feed_entry *fe = &l->batch[parsed];
				if (!feed_parse_entry(e, &fe->ms, &fe->seq, &fe->ev))
					continue;
				apply_entry(l, fe);
				parsed++;
			}
		}
	}
	freeReplyObject(reply);
	feed_append(l->cfg.feed, l->batch, parsed);
	if (entries < READ_COUNT && l->cur)
		mark_synced(l); /* read to the end (or nothing new) */
	return true;
}

/* Take an offered snapshot: carry the live words over, fetch what is new,
 * publish. */
static void adopt(struct live *l)
{
	pthread_mutex_lock(&l->lock);
	struct snap *next = l->pending;
	l->pending = NULL;
	pthread_mutex_unlock(&l->lock);
	if (!next)
		return;
	if (l->cur) {
		uint32_t *fresh = NULL;
		size_t nfresh = 0, applied = 0;
		if (!snap_live_carry(next, l->cur, &fresh, &nfresh)) {
			log_warn("live state: out of memory carrying state: reloading");
			l->need_load = true;
		} else if (l->redis && nfresh > 0 &&
			   !load_stations(l, next, fresh, nfresh, &applied)) {
			disconnect(l);
		}
		free(fresh);
	} else {
		l->need_load = true;
	}
	snap_unref(l->cur);
	l->cur = next;
	l->publish(l->publish_arg, snap_ref(next));
}

static void *live_main(void *arg)
{
	struct live *l = arg;
	log_ctx_set("thread", "live");
	while (!atomic_load(&l->stop)) {
		adopt(l);
		if (!l->redis && !connect_redis(l)) {
			wait_ms(l, l->retry_ms);
			l->retry_ms =
				l->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : l->retry_ms * 2;
			continue;
		}
		if ((l->need_sync && !sync_stream(l)) ||
		    (l->cur && l->need_load && !load_all(l)) || !follow(l))
			disconnect(l);
	}
	disconnect(l);
	return NULL;
}

struct live *live_start(const struct live_config *cfg, const struct meters *meters,
			live_publish_fn publish, void *arg)
{
	struct live *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = *cfg;
	l->meters = meters;
	l->publish = publish;
	l->publish_arg = arg;
	l->retry_ms = RETRY_FIRST_MS;
	atomic_init(&l->synced_ms, -1);
	pthread_mutex_init(&l->lock, NULL);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->batch = calloc(READ_COUNT, sizeof(*l->batch));
	if (l->wake_fd < 0 || !l->batch ||
	    pthread_create(&l->thread, NULL, live_main, l) != 0) {
		live_free(l);
		return NULL;
	}
	l->started = true;
	return l;
}

static void wake(struct live *l)
{
	uint64_t one = 1;
	if (write(l->wake_fd, &one, sizeof(one)) < 0)
		log_debug("live state: wake: %s", strerror(errno));
}

void live_stop(struct live *l)
{
	if (!l || !l->started)
		return;
	atomic_store(&l->stop, true);
	wake(l);
	pthread_join(l->thread, NULL);
	l->started = false;
}

void live_free(struct live *l)
{
	if (!l)
		return;
	live_stop(l);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	free(l->batch);
	snap_unref(l->pending);
	snap_unref(l->cur);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

void live_offer(struct live *l, struct snap *snap)
{
	pthread_mutex_lock(&l->lock);
	struct snap *old = l->pending;
	l->pending = snap;
	pthread_mutex_unlock(&l->lock);
	snap_unref(old);
	wake(l);
}

int64_t live_sync_age_ms(const struct live *l)
{
	int64_t t = atomic_load(&l->synced_ms);
	return t < 0 ? -1 : mono_ms() - t;
}

bool live_is_connected(const struct live *l)
{
	return atomic_load(&l->connected);
}
