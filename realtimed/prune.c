#include "prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rkeys.h"

#define SCAN_COUNT "1000"

/* KEYS[1] the lease, then keys of older layouts: station keys (deleted
 * unless a string: realtimed may have written the station since the SCAN)
 * and layout 1's (deleted). ARGV[1] token, [2] station prefix. Returns how
 * many went. */
static const char cleanup_lua[] =
	"-- prune: keys of older layouts\n" LEASE_FENCE_LUA
	"local stp, call, sub = ARGV[2], redis.call, string.sub\n"
	"local deleted = 0\n"
	"for k = 2, #KEYS do\n"
	"  local key = KEYS[k]\n"
	"  if sub(key, 1, #stp) ~= stp or call('TYPE', key).ok ~= 'string' then\n"
	"    deleted = deleted + call('DEL', key)\n"
	"  end\n"
	"end\n"
	"return deleted\n";

struct prune {
	struct aredis *r;    /* borrowed */
	struct lease *lease; /* borrowed */
	struct table *table; /* borrowed */
	int cleanup_script;
	uint64_t walk; /* bumped per start and cancel: stale replies ignored */
	bool busy;
	char cursor[32]; /* the SCAN cursor after the page in hand */
	struct prune_stats stats;
};

/* A request of one walk. */
struct prune_req {
	struct prune *p;
	uint64_t walk;
};

static struct prune_req *req_new(struct prune *p)
{
	struct prune_req *q = malloc(sizeof(*q));
	if (q) {
		q->p = p;
		q->walk = p->walk;
	}
	return q;
}

static struct prune *req_take(void *arg)
{
	struct prune_req *q = arg;
	struct prune *p = q->walk == q->p->walk && q->p->busy ? q->p : NULL;
	free(q);
	return p;
}

static void walk_failed(struct prune *p, const redisReply *reply, const char *what)
{
	p->busy = false;
	p->walk++;
	p->stats.walks_failed++;
	if (lease_is_fenced_reply(reply))
		lease_fenced(p->lease);
	log_warn("prune: %s failed (%.200s); the next complete sweep prunes again", what,
		 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
}

static void walk_done(struct prune *p)
{
	p->busy = false;
	p->walk++;
	p->stats.walks_done++;
}

static bool send_scan(struct prune *p);

static void next_page(struct prune *p)
{
	if (strcmp(p->cursor, "0") == 0)
		walk_done(p);
	else if (!send_scan(p))
		walk_failed(p, NULL, "SCAN");
}

static void on_cleanup_reply(void *arg, const redisReply *reply)
{
	struct prune *p = req_take(arg);
	if (!p)
		return;
	long long deleted = 0;
	if (!aredis_reply_ll(reply, &deleted)) {
		walk_failed(p, reply, "deleting older layouts' keys");
		return;
	}
	if (deleted > 0)
		log_info("prune: deleted %lld keys of an older layout (rkeys.h)", deleted);
	next_page(p);
}

static bool has_prefix(const redisReply *key, const char *prefix)
{
	size_t n = strlen(prefix);
	return key->type == REDIS_REPLY_STRING && key->len > n && memcmp(key->str, prefix, n) == 0;
}

/* A key the cleanup looks at: a station key (not a string: the script
 * checks) or a layout-1 key. */
static bool is_candidate(const redisReply *key)
{
	return has_prefix(key, RKEYS_STATION_PREFIX) || has_prefix(key, RKEYS_LEGACY_AVAIL_PREFIX) ||
	       has_prefix(key, RKEYS_LEGACY_QUICK_PREFIX);
}

static void on_scan_reply(void *arg, const redisReply *reply)
{
	struct prune *p = req_take(arg);
	if (!p)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_ARRAY ||
	    reply->element[0]->len >= sizeof(p->cursor)) {
		walk_failed(p, reply, "SCAN");
		return;
	}
	memcpy(p->cursor, reply->element[0]->str, reply->element[0]->len + 1);
	const redisReply *keys = reply->element[1];
	int candidates = 0;
	for (size_t k = 0; k < keys->elements; k++)
		candidates += is_candidate(keys->element[k]);
	if (candidates == 0) {
		next_page(p);
		return;
	}
	struct rcmd c;
	rcmd_init(&c);
	rcmd_evalsha(&c, p->r, p->cleanup_script, 1 + candidates);
	rcmd_adds(&c, RKEYS_LEASE);
	for (size_t k = 0; k < keys->elements; k++)
		if (is_candidate(keys->element[k]))
			rcmd_add(&c, keys->element[k]->str, keys->element[k]->len);
	rcmd_adds(&c, lease_token(p->lease));
	rcmd_adds(&c, RKEYS_STATION_PREFIX);
	struct prune_req *q = req_new(p);
	bool ok = q && aredis_send(p->r, &c, on_cleanup_reply, q);
	if (!ok)
		free(q);
	rcmd_free(&c);
	if (!ok)
		walk_failed(p, NULL, "sending a page");
}

static bool send_scan(struct prune *p)
{
	struct prune_req *q = req_new(p);
	const char *argv[] = {"SCAN", p->cursor, "MATCH", RKEYS_PREFIX "*", "COUNT", SCAN_COUNT};
	if (!q || !aredis_sendv(p->r, on_scan_reply, q, 6, argv)) {
		free(q);
		return false;
	}
	return true;
}

struct prune *prune_new(struct aredis *r, struct lease *l, struct table *t)
{
	struct prune *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->r = r;
	p->lease = l;
	p->table = t;
	p->cleanup_script = aredis_script(r, cleanup_lua);
	if (p->cleanup_script < 0) {
		prune_free(p);
		return NULL;
	}
	return p;
}

void prune_free(struct prune *p)
{
	if (!p)
		return;
	free(p);
}

void prune_start(struct prune *p, uint16_t stamp)
{
	prune_cancel(p);
	size_t forgotten = table_forget_unlisted(p->table, stamp);
	if (forgotten > 0)
		log_info("prune: removed %zu chargers the complete sweep no longer lists",
			 forgotten);
	else
		log_debug("prune: every charger known is listed by the sweep");
	p->busy = true;
	snprintf(p->cursor, sizeof(p->cursor), "0");
	if (!send_scan(p))
		walk_failed(p, NULL, "SCAN");
}

void prune_cancel(struct prune *p)
{
	p->walk++;
	p->busy = false;
}

bool prune_is_busy(const struct prune *p)
{
	return p->busy;
}

const struct prune_stats *prune_stats(const struct prune *p)
{
	return &p->stats;
}
