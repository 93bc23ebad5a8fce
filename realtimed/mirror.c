#include "mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rkeys.h"

#define SCAN_COUNT "1000"

/* KEYS: station keys (strings). ARGV[1] station prefix. Returns per key
 * {statId, value} ({statId} when it went meanwhile). Read-only. */
static const char read_lua[] = "-- mirror read: per station, its value\n"
			       "local skip, call, sub = #ARGV[1] + 1, redis.call, string.sub\n"
			       "local out = {}\n"
			       "for k = 1, #KEYS do\n"
			       "  out[k] = {sub(KEYS[k], skip), call('GET', KEYS[k])}\n"
			       "end\n"
			       "return out\n";

struct mirror {
	struct aredis *r;    /* borrowed */
	struct table *table; /* borrowed */
	int script;
	uint64_t walk; /* bumped per load and cancel: stale replies ignored */
	bool busy, scan_over;
	int outstanding; /* requests of this walk unanswered */
	uint64_t loaded;
	void (*done)(void *ctx, bool ok);
	void *ctx;
};

struct mirror_req {
	struct mirror *m;
	uint64_t walk;
};

static bool send(struct mirror *m, struct rcmd *c, const char **argv, int argc,
		 aredis_reply_fn fn)
{
	struct mirror_req *q = malloc(sizeof(*q));
	if (!q)
		return false;
	*q = (struct mirror_req){m, m->walk};
	bool ok = c ? aredis_send(m->r, c, fn, q) : aredis_sendv(m->r, fn, q, argc, argv);
	if (!ok) {
		free(q);
		return false;
	}
	m->outstanding++;
	return true;
}

static struct mirror *take(void *arg)
{
	struct mirror_req *q = arg;
	struct mirror *m = q->walk == q->m->walk && q->m->busy ? q->m : NULL;
	free(q);
	if (m)
		m->outstanding--;
	return m;
}

static void finish(struct mirror *m, bool ok, const redisReply *reply)
{
	m->busy = false;
	m->walk++;
	if (ok)
		log_debug("mirror: %llu chargers loaded from Redis", (unsigned long long)m->loaded);
	else if (reply)
		log_warn("mirror: loading what Redis holds failed: %.200s",
			 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	m->done(m->ctx, ok);
}

static void learn_station(struct mirror *m, const redisReply *st)
{
	if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
	    st->element[0]->type != REDIS_REPLY_STRING || st->element[0]->len == 0 ||
	    st->element[0]->len > TABLE_STAT_ID_MAX || st->element[1]->type != REDIS_REPLY_STRING)
		return; /* gone meanwhile, or no station id: leave it */
	const char *sid = st->element[0]->str, *v = st->element[1]->str;
	size_t slen = st->element[0]->len, len = st->element[1]->len, at;
	struct rkeys_avail av;
	struct rkeys_charger c;
	bool is_whole = rkeys_live_head(v, len, &av, &at);
	size_t head_len = at;
	uint32_t station = 0; /* an index: learning may move the table's entries */
	int next = 0;
	while (is_whole && (next = rkeys_live_next(v, len, &at, &c)) == 1) {
		uint32_t learnt =
			table_learn(m->table, sid, slen, c.id, c.id_len, c.stat, c.updated, c.quick);
		if (!learnt) {
			is_whole = false; /* an id too long: the value is rewritten without it */
			continue;
		}
		m->loaded++;
		station = learnt;
	}
	if (!station)
		return; /* nothing realtimed knows: the next complete sweep's cleanup */
	/* a value that is not realtimed's whole writing ("") is written again */
	char head[RKEYS_LIVE_HEAD_MAX] = "";
	if (is_whole && next == 0 && head_len < sizeof(head)) {
		memcpy(head, v, head_len);
		head[head_len] = '\0';
	}
	table_av_check(m->table, station, head);
}

static void maybe_done(struct mirror *m)
{
	if (m->busy && m->scan_over && m->outstanding == 0)
		finish(m, true, NULL);
}

static void on_read(void *arg, const redisReply *reply);
static bool send_scan(struct mirror *m, const char *cursor);

static void on_scan(void *arg, const redisReply *reply)
{
	struct mirror *m = take(arg);
	if (!m)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_ARRAY) {
		finish(m, false, reply);
		return;
	}
	const redisReply *keys = reply->element[1];
	if (keys->elements > 0) {
		struct rcmd c;
		rcmd_init(&c);
		rcmd_evalsha(&c, m->r, m->script, (int)keys->elements);
		for (size_t k = 0; k < keys->elements; k++)
			rcmd_add(&c, keys->element[k]->str, keys->element[k]->len);
		rcmd_adds(&c, RKEYS_STATION_PREFIX);
		bool ok = send(m, &c, NULL, 0, on_read);
		rcmd_free(&c);
		if (!ok) {
			finish(m, false, NULL);
			return;
		}
	}
	if (strcmp(reply->element[0]->str, "0") == 0)
		m->scan_over = true;
	else if (!send_scan(m, reply->element[0]->str)) {
		finish(m, false, NULL);
		return;
	}
	maybe_done(m);
}

static void on_read(void *arg, const redisReply *reply)
{
	struct mirror *m = take(arg);
	if (!m)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY) {
		finish(m, false, reply);
		return;
	}
	for (size_t k = 0; k < reply->elements; k++)
		learn_station(m, reply->element[k]);
	maybe_done(m);
}

static bool send_scan(struct mirror *m, const char *cursor)
{
	const char *argv[] = {"SCAN",  cursor,	   "MATCH", RKEYS_STATION_PREFIX "*",
			      "COUNT", SCAN_COUNT, "TYPE",  "string"};
	return send(m, NULL, argv, 8, on_scan);
}

struct mirror *mirror_new(struct aredis *r, struct table *t)
{
	struct mirror *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->r = r;
	m->table = t;
	if ((m->script = aredis_script(r, read_lua)) < 0) {
		mirror_free(m);
		return NULL;
	}
	return m;
}

void mirror_free(struct mirror *m)
{
	free(m);
}

void mirror_load(struct mirror *m, void (*done)(void *ctx, bool ok), void *ctx)
{
	mirror_cancel(m);
	table_stored_reset(m->table);
	m->busy = true;
	m->scan_over = false;
	m->outstanding = 0;
	m->loaded = 0;
	m->done = done;
	m->ctx = ctx;
	if (!send_scan(m, "0"))
		finish(m, false, NULL);
}

void mirror_cancel(struct mirror *m)
{
	m->walk++;
	m->busy = false;
}

bool mirror_is_loading(const struct mirror *m)
{
	return m->busy;
}

uint64_t mirror_loaded(const struct mirror *m)
{
	return m->loaded;
}
