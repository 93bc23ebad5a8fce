#include "stats.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast.h"
#include "json.h"
#include "kst.h"
#include "log.h"
#include "pgstats.h"
#include "rds.h"
#include "rkeys.h"
#include "routes.h"

#define RETRY_FIRST_MS 250
#define RETRY_MAX_MS   5000

/* The connection's life. */
enum stats_state {
	STATS_DOWN,	  /* no connection; the retry timer is set */
	STATS_CONNECTING, /* connect in progress; the deadline timer is set */
	STATS_READY,	  /* connected (AUTH/SELECT queued first) */
};

struct stats {
	struct event_base *base; /* borrowed: the worker's */
	struct rds_url url;
	int timeout_ms;
	const struct meters *meters;
	redisAsyncContext *ac;
	enum stats_state state;
	struct event *timer; /* retry or connect deadline */
	int64_t retry_ms;
	int setup_left;	     /* AUTH/SELECT replies still awaited */
	char last_why[160];  /* the last failure logged: repeats are not */
	bool refused;	     /* this connection's AUTH/SELECT failed (logged) */
	size_t pending;
	bool closing;
};

/* One request waiting for its MGET. Freed when both the reply (or its
 * failure) arrived and the answer went out. */
struct pending {
	struct stats *st;
	struct worker *w;
	struct evhttp_request *req;
	struct route_ctx rc;
	struct snap *snap; /* owned reference */
	uint32_t station;
	struct stats_ask ask;
	struct event *deadline;
	bool answered;
};

static void schedule(struct stats *st, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(st->timer, &tv);
}

/* Once per failure reason until a connection is fully set up again: a
 * wrong password otherwise logs at every retry of every worker. */
static void warn_once(struct stats *st, const char *what, const char *why)
{
	char text[sizeof(st->last_why)];
	snprintf(text, sizeof(text), "%s: %s", what, why);
	if (strcmp(text, st->last_why) == 0)
		return;
	snprintf(st->last_why, sizeof(st->last_why), "%s", text);
	log_warn("statistics: Redis %s", text);
}

/* Connected and AUTH/SELECT accepted: the backoff starts over. */
static void set_up(struct stats *st)
{
	st->retry_ms = RETRY_FIRST_MS;
	st->last_why[0] = '\0';
}

static void down(struct stats *st, const char *why)
{
	if (st->state != STATS_DOWN && !st->closing && !st->refused)
		warn_once(st, "connection lost", why);
	st->refused = false;
	metric_inc(st->meters->redis_errors);
	st->ac = NULL;
	st->state = STATS_DOWN;
	if (!st->closing) {
		schedule(st, st->retry_ms);
		st->retry_ms = st->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : st->retry_ms * 2;
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct stats *st = ac->data;
	evtimer_del(st->timer);
	if (status != REDIS_OK) {
		down(st, ac->errstr); /* hiredis frees the context after this */
		return;
	}
	st->state = STATS_READY;
	if (st->setup_left == 0)
		set_up(st);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct stats *st = ac->data;
	down(st, status == REDIS_OK ? "closed" : ac->errstr);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	redisReply *reply = r;
	struct stats *st = ac->data;
	if (reply && reply->type == REDIS_REPLY_ERROR) {
		char what[32];
		snprintf(what, sizeof(what), "refused %s", (const char *)privdata);
		warn_once(st, what, reply->str);
		st->refused = true; /* the disconnect that follows is ours */
		redisAsyncDisconnect(ac);
	} else if (reply && --st->setup_left == 0) {
		set_up(st);
	}
}

static void connect_redis(struct stats *st)
{
	redisAsyncContext *ac = st->url.is_unix ? redisAsyncConnectUnix(st->url.path)
						: redisAsyncConnect(st->url.host, st->url.port);
	if (!ac || ac->err) {
		if (ac)
			redisAsyncFree(ac);
		st->state = STATS_CONNECTING; /* so down() logs */
		down(st, "connect failed");
		return;
	}
	ac->data = st;
	if (redisLibeventAttach(ac, st->base) != REDIS_OK) {
		redisAsyncFree(ac);
		down(st, "attach failed");
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	st->ac = ac;
	st->state = STATS_CONNECTING;
	st->setup_left = (st->url.has_password ? 1 : 0) + (st->url.db ? 1 : 0);
	if (st->url.has_password) {
		const char *argv[3] = {"AUTH", st->url.user, st->url.password};
		if (st->url.user[0])
			redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", 3, argv, NULL);
		else
			redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", 2,
					      (const char *[]){"AUTH", st->url.password}, NULL);
	}
	if (st->url.db) {
		char db[16];
		snprintf(db, sizeof(db), "%d", st->url.db);
		redisAsyncCommandArgv(ac, on_setup_reply, "SELECT", 2,
				      (const char *[]){"SELECT", db}, NULL);
	}
	schedule(st, st->timeout_ms); /* connect deadline */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stats *st = arg;
	if (st->state == STATS_CONNECTING && st->ac) {
		/* the connect took too long: give up on it (callbacks run) */
		redisAsyncContext *ac = st->ac;
		st->ac = NULL;
		redisAsyncFree(ac);
		if (st->state != STATS_DOWN)
			down(st, "connect timed out");
		return;
	}
	if (st->state == STATS_DOWN)
		connect_redis(st);
}

struct stats *stats_new(struct event_base *base, const char *redis_url, int timeout_ms,
			const struct meters *meters)
{
	struct stats *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	char err[256];
	if (!rds_url_parse(redis_url, &st->url, err, sizeof(err))) {
		log_error("statistics: %s", err);
		free(st);
		return NULL;
	}
	st->base = base;
	st->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	st->meters = meters;
	st->retry_ms = RETRY_FIRST_MS;
	st->timer = evtimer_new(base, on_timer, st);
	if (!st->timer) {
		free(st);
		return NULL;
	}
	connect_redis(st);
	return st;
}

void stats_free(struct stats *st)
{
	if (!st)
		return;
	st->closing = true;
	if (st->ac) {
		redisAsyncContext *ac = st->ac;
		st->ac = NULL;
		redisAsyncFree(ac); /* pending callbacks get NULL: they answer 503 */
	}
	evtimer_del(st->timer);
	event_free(st->timer);
	free(st);
}

size_t stats_pending(const struct stats *st)
{
	return st->pending;
}

/* ---- the arithmetic ---- */

/* One class's 24 hours: the share of its chargers' samples that `counted`
 * (uses, or out of service) counts, pooled over the class. */
static void put_class(struct json_gen *g, const char *name, size_t n, const bool *is_quick,
		      bool quick, const char *const *blobs, const size_t *lens, int weekday,
		      enum rkeys_cg_counter counted)
{
	json_key(g, name);
	json_arr_begin(g);
	for (int hour = 0; hour < 24; hour++) {
		uint64_t samples = 0, hits = 0;
		int slot = rkeys_congestion_slot(weekday, hour);
		for (size_t i = 0; i < n; i++) {
			if (is_quick[i] != quick)
				continue;
			samples +=
				rkeys_congestion_counter(blobs[i], lens[i], slot, RKEYS_CG_SAMPLES);
			hits += rkeys_congestion_counter(blobs[i], lens[i], slot, counted);
		}
		json_obj_begin(g);
		json_kv_int(g, "hour", hour);
		double ratio = samples ? round((double)hits / (double)samples * 10000) / 10000 : -1;
		if (ratio > 1)
			ratio = 1; /* saturated counters can leave a count above samples */
		json_kv_double(g, "ratio", ratio, JSON_SHORTEST);
		json_obj_end(g);
	}
	json_arr_end(g);
}

/* Member `key`: both classes' hours of `counted`. */
static void put_classes(struct json_gen *g, const char *key, size_t n, const bool *is_quick,
			const char *const *blobs, const size_t *lens, int weekday,
			enum rkeys_cg_counter counted)
{
	json_key(g, key);
	json_obj_begin(g);
	put_class(g, "standard", n, is_quick, false, blobs, lens, weekday, counted);
	put_class(g, "quick", n, is_quick, true, blobs, lens, weekday, counted);
	json_obj_end(g);
}

void stats_render(struct buf *out, const char *station_id, size_t nchargers, const bool *is_quick,
		  const char *const *blobs, const size_t *lens, int weekday,
		  const struct stats_source *src)
{
	struct json_gen g;
	json_gen_init(&g, out);
	json_obj_begin(&g);
	json_kv_str(&g, "stationId", station_id);
	put_classes(&g, "congestion", nchargers, is_quick, blobs, lens, weekday, RKEYS_CG_USES);
	/* reliability (issue 10): out of service apart from busy */
	put_classes(&g, "outOfService", nchargers, is_quick, blobs, lens, weekday,
		    RKEYS_CG_OUT_OF_SERVICE);
	stats_put_source(&g, src);
	json_obj_end(&g);
	if (!json_gen_finish(&g))
		out->failed = true;
}

/* ---- requests ---- */

static void pending_free(struct pending *p)
{
	if (p->deadline)
		event_free(p->deadline);
	snap_unref(p->snap);
	p->st->pending--;
	free(p);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	if (p->answered)
		return;
	p->answered = true;
	metric_inc(p->st->meters->redis_errors);
	pgstats_answer(p->w, p->req, &p->rc, p->snap, p->station, &p->ask,
		       "Redis did not answer in time");
	/* p stays until the reply (or the connection's end) arrives */
}

void stats_answer(struct worker *w, struct evhttp_request *req, const struct route_ctx *rc,
		  const struct snap *s, uint32_t station, const struct stats_ask *ask,
		  const char *const *blobs, const size_t *lens, const struct stats_source *src)
{
	const struct snap_station *st = &s->stations[station];
	size_t n = st->charger_count;
	bool *is_quick = malloc((n + 1) * sizeof(*is_quick));
	uint64_t *live = malloc((n + 1) * sizeof(*live));
	if (!is_quick || !live) {
		free(is_quick);
		free(live);
		routes_error(w, req, rc, 500, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		is_quick[i] = snap_charger_is_quick(&s->chargers[st->first_charger + i]);
		live[i] = snap_live_word(s, st->first_charger + (uint32_t)i);
	}
	struct buf *out = &w->out;
	buf_reset(out);
	if (ask->is_forecast)
		forecast_render(out, snap_text(s, st->id), n, is_quick, blobs, lens, live, ask,
				src);
	else
		stats_render(out, snap_text(s, st->id), n, is_quick, blobs, lens, ask->weekday,
			     src);
	free(is_quick);
	free(live);
	if (buf_ok(out))
		routes_reply(w, req, rc, 200, out->data, out->len);
	else
		routes_error(w, req, rc, 500, "out of memory");
}

static void on_counters(redisAsyncContext *ac, void *r, void *privdata)
{
	struct pending *p = privdata;
	redisReply *reply = r;
	if (!p->answered) {
		p->answered = true;
		const struct snap *s = p->snap;
		size_t n = s->stations[p->station].charger_count;
		if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
			metric_inc(p->st->meters->redis_errors);
			char why[128];
			snprintf(why, sizeof(why), "Redis: %s",
				 reply && reply->type == REDIS_REPLY_ERROR ? reply->str
									   : "unreachable");
			pgstats_answer(p->w, p->req, &p->rc, p->snap, p->station, &p->ask, why);
		} else {
			const char **blobs = malloc((n + 1) * sizeof(*blobs));
			size_t *lens = malloc((n + 1) * sizeof(*lens));
			if (!blobs || !lens) {
				routes_error(p->w, p->req, &p->rc, 500, "out of memory");
			} else {
				for (size_t i = 0; i < n; i++) {
					const redisReply *e = reply->element[i];
					bool str = e->type == REDIS_REPLY_STRING;
					blobs[i] = str ? e->str : NULL;
					lens[i] = str ? e->len : 0;
				}
				static const struct stats_source redis = {"redis", 0};
				stats_answer(p->w, p->req, &p->rc, s, p->station, &p->ask, blobs,
					     lens, &redis);
			}
			free(blobs);
			free(lens);
		}
	}
	pending_free(p);
}

bool stats_request(struct stats *st, struct worker *w, struct evhttp_request *req,
		   const struct route_ctx *rc, struct snap *snap, uint32_t station,
		   const struct stats_ask *ask)
{
	if (st->state != STATS_READY || !st->ac)
		return false;
	const struct snap_station *s = &snap->stations[station];
	size_t n = s->charger_count;
	const char **argv = malloc((n + 1) * sizeof(*argv));
	char *keys = malloc(n * RKEYS_KEY_MAX + 1);
	struct pending *p = calloc(1, sizeof(*p));
	if (!argv || !keys || !p) {
		free(argv);
		free(keys);
		free(p);
		return false;
	}
	argv[0] = "MGET";
	for (size_t i = 0; i < n; i++) {
		char *key = keys + i * RKEYS_KEY_MAX;
		const struct snap_charger *ch = &snap->chargers[s->first_charger + i];
		rkeys_congestion(key, RKEYS_KEY_MAX, snap_text(snap, s->id),
				 snap_text(snap, ch->id));
		argv[i + 1] = key;
	}
	*p = (struct pending){st, w, req, *rc, snap_ref(snap), station, *ask, NULL, false};
	st->pending++;
	int rc_send = redisAsyncCommandArgv(st->ac, on_counters, p, (int)n + 1, argv, NULL);
	free(argv);
	free(keys);
	if (rc_send != REDIS_OK) {
		pending_free(p);
		return false;
	}
	p->deadline = evtimer_new(st->base, on_deadline, p);
	if (p->deadline) {
		struct timeval tv = {(time_t)(st->timeout_ms / 1000),
				     (suseconds_t)(st->timeout_ms % 1000) * 1000};
		evtimer_add(p->deadline, &tv);
	}
	return true;
}
