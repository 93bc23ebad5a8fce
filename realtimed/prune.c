#include "prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "log.h"
#include "rkeys.h"

#define SCAN_COUNT "1000"


/* KEYS: station hashes. ARGV[1] station prefix, [2] and [3] layout 1's
 * availability and quick prefixes. Returns per station {its fields, 1 when
 * layout 1's keys of it remain}, in KEYS order. */
static const char read_lua[] =
	"-- prune read: fields per station, and whether layout 1's keys remain\n"
	"local skip, avp, qkp, call = #ARGV[1] + 1, ARGV[2], ARGV[3], redis.call\n"
	"local out = {}\n"
	"for k = 1, #KEYS do\n"
	"  local sid = string.sub(KEYS[k], skip)\n"
	"  out[k] = {call('HKEYS', KEYS[k]), call('EXISTS', avp .. sid, qkp .. sid)}\n"
	"end\n"
	"return out\n";

/* KEYS[1] the lease, KEYS[2] the change stream. ARGV[1] token, [2]
 * station prefix, [3] availability field, [4] stream MAXLEN, [5] and [6]
 * layout 1's availability and quick prefixes; then runs: statId, count,
 * chgerIds. Each charger removed gets a stream entry "s c gone=1"
 * (followers drop it); the station's availability is counted again from
 * its hash, and the hash deleted when no charger is left; layout 1's keys
 * of the station go. Returns {removed, stations emptied}. */
static const char remove_lua[] =
	"-- prune: chargers a complete sweep no longer lists\n" LEASE_FENCE_LUA
	"local stp, avf, maxlen, avp, qkp = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]\n"
	"local call, byte, sub = redis.call, string.byte, string.sub\n"
	"local removed, emptied = 0, 0\n"
	"local i, n = 7, #ARGV\n"
	"while i <= n do\n"
	"  local sid, count = ARGV[i], tonumber(ARGV[i + 1])\n"
	"  local skey = stp .. sid\n"
	"  for x = i + 2, i + 1 + count do\n"
	"    if call('HDEL', skey, ARGV[x]) == 1 then\n"
	"      removed = removed + 1\n"
	"      call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 's', sid, 'c', ARGV[x], 'gone', '1')\n"
	"    end\n"
	"  end\n"
	"  call('DEL', avp .. sid, qkp .. sid)\n"
	"  local flat = call('HGETALL', skey)\n"
	"  local standby, total, quick = 0, 0, 0\n"
	"  for x = 1, #flat, 2 do\n"
	"    if sub(flat[x], 1, 1) ~= '" RKEYS_RESERVED_PREFIX "' then\n"
	"      total = total + 1\n"
	"      local v = flat[x + 1]\n"
	"      if byte(v, 1) == " STANDBY_BYTE " and byte(v, 2) == 58 then\n"
	"        standby = standby + 1\n"
	"        if sub(v, -2) == '" RKEYS_QUICK_SUFFIX "' then quick = quick + 1 end\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  if total == 0 then\n"
	"    call('DEL', skey)\n"
	"    emptied = emptied + 1\n"
	"  else\n"
	"    call('HSET', skey, avf, standby .. ':' .. total .. ':' .. quick)\n"
	"  end\n"
	"  i = i + 2 + count\n"
	"end\n"
	"return {removed, emptied}\n";

struct prune {
	struct aredis *r;     /* borrowed */
	struct lease *lease;  /* borrowed */
	struct table *table;  /* borrowed */
	int read_script, remove_script;
	uint64_t walk;	      /* bumped per start and cancel: stale replies ignored */
	bool busy;
	uint16_t stamp;
	uint64_t walk_removed, walk_emptied;
	char cursor[32];      /* the SCAN cursor after the page in hand */
	struct rcmd cmd;      /* owned: the page's read, whose KEYS name the stations */
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
	if (p->walk_removed > 0)
		log_info("prune: removed %llu chargers the complete sweep no longer lists (%llu "
			 "stations left without chargers, deleted)",
			 (unsigned long long)p->walk_removed, (unsigned long long)p->walk_emptied);
	else
		log_debug("prune: every charger in Redis is listed by the sweep");
}

static bool send_scan(struct prune *p);

static void on_remove_reply(void *arg, const redisReply *reply)
{
	struct prune *p = req_take(arg);
	if (!p)
		return;
	long long removed = 0, emptied = 0;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    !aredis_reply_ll(reply->element[0], &removed) ||
	    !aredis_reply_ll(reply->element[1], &emptied)) {
		walk_failed(p, reply, "removing chargers");
		return;
	}
	p->walk_removed += (uint64_t)removed;
	p->walk_emptied += (uint64_t)emptied;
	p->stats.removed += (uint64_t)removed;
	p->stats.stations_emptied += (uint64_t)emptied;
	if (strcmp(p->cursor, "0") == 0)
		walk_done(p);
	else if (!send_scan(p))
		walk_failed(p, NULL, "SCAN");
}

/* Is charger cid of station sid absent from the sweep? Stamped at or after
 * the sweep's stamp (a later sweep may have begun meanwhile; stamps wrap)
 * means listed since. */
static bool is_gone(const struct prune *p, const char *sid, const char *cid)
{
	const struct table_entry *e = table_find(p->table, sid, cid);
	return !e || (e->flags & TABLE_GONE) || (uint16_t)(e->seen - p->stamp) >= 0x8000;
}

static void on_read_reply(void *arg, const redisReply *reply)
{
	struct prune *p = req_take(arg);
	if (!p)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY) {
		walk_failed(p, reply, "reading charger ids");
		return;
	}
	/* the keys went out as KEYS; the station ids come back from the command */
	struct rcmd *c = &p->cmd;
	const size_t stlen = strlen(RKEYS_STATION_PREFIX);
	size_t key_arg = 3; /* EVALSHA sha nkeys KEYS... */
	struct rcmd out;
	rcmd_init(&out);
	rcmd_evalsha(&out, p->r, p->remove_script, 2);
	rcmd_adds(&out, RKEYS_LEASE);
	rcmd_adds(&out, RKEYS_CHANGES);
	rcmd_adds(&out, lease_token(p->lease));
	rcmd_adds(&out, RKEYS_STATION_PREFIX);
	rcmd_adds(&out, RKEYS_AVAIL_FIELD);
	rcmd_addll(&out, RKEYS_CHANGES_MAXLEN);
	rcmd_adds(&out, RKEYS_LEGACY_AVAIL_PREFIX);
	rcmd_adds(&out, RKEYS_LEGACY_QUICK_PREFIX);
	int runs = 0;
	for (size_t k = 0; k < reply->elements; k++, key_arg++) {
		const redisReply *st = reply->element[k];
		if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
		    st->element[0]->type != REDIS_REPLY_ARRAY || key_arg >= (size_t)c->argc)
			continue;
		const redisReply *ids = st->element[0];
		bool has_legacy = st->element[1]->type == REDIS_REPLY_INTEGER &&
				  st->element[1]->integer > 0;
		char sid[TABLE_STAT_ID_MAX + 1];
		size_t len = c->lens[key_arg];
		if (len <= stlen || len - stlen > TABLE_STAT_ID_MAX)
			continue; /* not an id realtimed writes: leave it */
		memcpy(sid, c->text.data + c->offs[key_arg] + stlen, len - stlen);
		sid[len - stlen] = '\0';
		int count_arg = -1, count = 0;
		bool has_charger = false;
		for (size_t x = 0; x < ids->elements; x++) {
			const redisReply *id = ids->element[x];
			if (id->type != REDIS_REPLY_STRING || !rkeys_is_charger_field(id->str))
				continue;
			has_charger = true;
			if (id->len > TABLE_CHGER_ID_MAX || !is_gone(p, sid, id->str))
				continue;
			if (count_arg < 0) {
				rcmd_adds(&out, sid);
				count_arg = out.argc;
				rcmd_adds(&out, "00000"); /* room for the count */
			}
			rcmd_adds(&out, id->str);
			count++;
			table_forget(p->table, sid, id->str);
		}
		/* a run removing no charger: layout 1's keys go, or a hash left
		 * with no charger's field (its availability alone) is deleted */
		if (count_arg < 0 && (has_legacy || !has_charger)) {
			rcmd_adds(&out, sid);
			count_arg = out.argc;
			rcmd_adds(&out, "0");
		}
		if (count_arg >= 0 && !out.failed) {
			char text[16];
			int n = snprintf(text, sizeof(text), "%d", count);
			memcpy(out.text.data + out.offs[count_arg], text, (size_t)n);
			out.lens[count_arg] = (size_t)n;
			runs++;
		}
	}
	bool ok = true;
	if (runs > 0) {
		struct prune_req *q = req_new(p);
		ok = q && aredis_send(p->r, &out, on_remove_reply, q);
		if (!ok)
			free(q);
	} else if (strcmp(p->cursor, "0") == 0) {
		walk_done(p);
	} else {
		ok = send_scan(p);
	}
	rcmd_free(&out);
	if (!ok)
		walk_failed(p, NULL, "sending a page");
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
	if (keys->elements == 0) {
		if (strcmp(p->cursor, "0") == 0)
			walk_done(p);
		else if (!send_scan(p))
			walk_failed(p, NULL, "SCAN");
		return;
	}
	struct rcmd *c = &p->cmd;
	rcmd_reset(c);
	rcmd_evalsha(c, p->r, p->read_script, (int)keys->elements);
	for (size_t k = 0; k < keys->elements; k++)
		rcmd_add(c, keys->element[k]->str, keys->element[k]->len);
	rcmd_adds(c, RKEYS_STATION_PREFIX);
	rcmd_adds(c, RKEYS_LEGACY_AVAIL_PREFIX);
	rcmd_adds(c, RKEYS_LEGACY_QUICK_PREFIX);
	struct prune_req *q = req_new(p);
	if (!q || !aredis_send(p->r, c, on_read_reply, q)) {
		free(q);
		walk_failed(p, NULL, "reading charger ids");
	}
}

static bool send_scan(struct prune *p)
{
	struct prune_req *q = req_new(p);
	const char *argv[] = {"SCAN",  p->cursor,  "MATCH", RKEYS_STATION_PREFIX "*",
			      "COUNT", SCAN_COUNT, "TYPE",  "hash"};
	if (!q || !aredis_sendv(p->r, on_scan_reply, q, 8, argv)) {
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
	rcmd_init(&p->cmd);
	p->read_script = aredis_script(r, read_lua);
	p->remove_script = aredis_script(r, remove_lua);
	if (p->read_script < 0 || p->remove_script < 0) {
		prune_free(p);
		return NULL;
	}
	return p;
}

void prune_free(struct prune *p)
{
	if (!p)
		return;
	rcmd_free(&p->cmd);
	free(p);
}

void prune_start(struct prune *p, uint16_t stamp)
{
	prune_cancel(p);
	p->busy = true;
	p->stamp = stamp;
	p->walk_removed = p->walk_emptied = 0;
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
