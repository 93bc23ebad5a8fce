#include "apply.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "model.h"
#include "rkeys.h"

_Static_assert(MODEL_STATUS_STANDBY == 2, "STANDBY_BYTE must be MODEL_STATUS_STANDBY's digit");
_Static_assert(MODEL_STATUS_UNKNOWN <= 9, "statuses must be one digit");

/* KEYS[1] the lease, KEYS[2] the change stream.
 * ARGV[1] token, [2] station prefix, [3] availability prefix, [4] quick
 * prefix, [5] stream MAXLEN; then runs of one station's chargers: statId,
 * count, the run's flags (one digit per charger: 1 quickness known, 2 quick,
 * 4 seed), then per charger chgerId and value "<stat>:<unix>". A station
 * split over runs (a poll's order) is handled run by run. Returns
 * {applied, stale, changes}.
 *
 * Keys are built here from the prefixes rkeys.h passes: realtimed's Redis is
 * one node, never a cluster. The script is the hot path of a sweep, so it
 * avoids patterns and tables it does not need: our values have a one-digit
 * status (model.h maps every other code to 9); stored values are split at
 * their ':'; a batch holds each charger once (the table queues an entry
 * once); a station new to Redis (no hash yet) has no quick set either, as
 * both are written here. */
static const char apply_lua[] =
	"-- apply: statuses newer than the stored ones, availability, changes\n" LEASE_FENCE_LUA
	"local stp, avp, qkp, maxlen = ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
	"local byte, sub, find = string.byte, string.sub, string.find\n"
	"local call = redis.call\n"
	"local applied, stale, changes = 0, 0, 0\n"
	"-- availability values, written with one MSET per 500 stations\n"
	"local av, nav = {}, 0\n"
	"local function put_av(key, value)\n"
	"  av[nav + 1] = key\n"
	"  av[nav + 2] = value\n"
	"  nav = nav + 2\n"
	"  if nav == 1000 then call('MSET', unpack(av, 1, nav)); nav = 0 end\n"
	"end\n"
	"local i, n = 6, #ARGV\n"
	"while i <= n do\n"
	"  local sid, flags = ARGV[i], ARGV[i + 2]\n"
	"  local first = i + 3\n"
	"  local last = i + 2 + 2 * tonumber(ARGV[i + 1])\n"
	"  local skey = stp .. sid\n"
	"  local flat = call('HGETALL', skey)\n"
	"  local hset, nh, j = {}, 0, 0\n"
	"  if #flat == 0 then\n"
	"    -- new to Redis: every charger applied (a batch holds each once);\n"
	"    -- availability and quick set from the run alone\n"
	"    local add, standby, quick = {}, 0, 0\n"
	"    for k = first, last, 2 do\n"
	"      j = j + 1\n"
	"      local cid, v, fl = ARGV[k], ARGV[k + 1], byte(flags, j) - 48\n"
	"      hset[nh + 1] = cid\n"
	"      hset[nh + 2] = v\n"
	"      nh = nh + 2\n"
	"      local is_quick = fl % 4 == 3\n"
	"      if is_quick then add[#add + 1] = cid end\n"
	"      if byte(v, 1) == " STANDBY_BYTE " and byte(v, 2) == 58 then\n"
	"        standby = standby + 1\n"
	"        if is_quick then quick = quick + 1 end\n"
	"      end\n"
	"      if fl < 4 then\n"
	"        call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 's', sid, 'c', cid,\n"
	"             'st', sub(v, 1, 1), 't', sub(v, 3))\n"
	"        changes = changes + 1\n"
	"      end\n"
	"    end\n"
	"    applied = applied + j\n"
	"    call('HSET', skey, unpack(hset))\n"
	"    if #add > 0 then call('SADD', qkp .. sid, unpack(add)) end\n"
	"    put_av(avp .. sid, standby .. ':' .. j .. ':' .. quick)\n"
	"  else\n"
	"    local cur = {}\n"
	"    for x = 1, #flat, 2 do cur[flat[x]] = flat[x + 1] end\n"
	"    local want, quick_known = {}, false\n"
	"    for k = first, last, 2 do\n"
	"      j = j + 1\n"
	"      local cid, v, fl = ARGV[k], ARGV[k + 1], byte(flags, j) - 48\n"
	"      local old = cur[cid]\n"
	"      local newer = old == nil\n"
	"      if not newer then\n"
	"        local at = find(old, ':', 1, true)\n"
	"        local ot = at and tonumber(sub(old, at + 1))\n"
	"        newer = ot == nil or tonumber(sub(v, 3)) > ot\n"
	"      end\n"
	"      if newer then\n"
	"        cur[cid] = v\n"
	"        hset[nh + 1] = cid\n"
	"        hset[nh + 2] = v\n"
	"        nh = nh + 2\n"
	"        applied = applied + 1\n"
	"        if old or fl < 4 then\n"
	"          call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 's', sid, 'c', cid,\n"
	"               'st', sub(v, 1, 1), 't', sub(v, 3))\n"
	"          changes = changes + 1\n"
	"        end\n"
	"      else\n"
	"        stale = stale + 1\n"
	"      end\n"
	"      if fl % 2 == 1 then\n"
	"        want[cid] = fl % 4 >= 2\n"
	"        quick_known = true\n"
	"      end\n"
	"    end\n"
	"    local touched = nh > 0\n"
	"    if touched then call('HSET', skey, unpack(hset)) end\n"
	"    if touched or quick_known then\n"
	"      local qkey = qkp .. sid\n"
	"      local q = {}\n"
	"      for _, c in ipairs(call('SMEMBERS', qkey)) do q[c] = true end\n"
	"      local add, rem = {}, {}\n"
	"      for c, w in pairs(want) do\n"
	"        if w and not q[c] then add[#add + 1] = c; q[c] = true\n"
	"        elseif not w and q[c] then rem[#rem + 1] = c; q[c] = nil end\n"
	"      end\n"
	"      if #add > 0 then call('SADD', qkey, unpack(add)); touched = true end\n"
	"      if #rem > 0 then call('SREM', qkey, unpack(rem)); touched = true end\n"
	"      if touched then\n"
	"        local standby, total, quick = 0, 0, 0\n"
	"        for c, v in pairs(cur) do\n"
	"          total = total + 1\n"
	"          if byte(v, 1) == " STANDBY_BYTE " and byte(v, 2) == 58 then\n"
	"            standby = standby + 1\n"
	"            if q[c] then quick = quick + 1 end\n"
	"          end\n"
	"        end\n"
	"        put_av(avp .. sid, standby .. ':' .. total .. ':' .. quick)\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  i = last + 1\n"
	"end\n"
	"if nav > 0 then call('MSET', unpack(av, 1, nav)) end\n"
	"return {applied, stale, changes}\n";

/* One EVALSHA in flight. */
struct batch {
	struct apply *a; /* borrowed */
	long *entries;	 /* owned: table indexes, requeued on failure */
	int count;
};

struct apply {
	struct event_base *base; /* borrowed */
	struct aredis *r;	 /* borrowed */
	struct lease *lease;	 /* borrowed */
	struct table *table;	 /* borrowed */
	struct apply_opts opts;
	int script;
	struct event *pump_ev;	/* owned: deferred pump */
	struct event *pause_ev; /* owned: the pause after an error reply */
	bool is_paused;
	size_t inflight;
	struct apply_stats stats;
	struct rcmd cmd; /* owned: reused per batch */
	void (*barrier_fn)(void *ctx);
	void *barrier_ctx;
	uint64_t errors_logged;
};

static void requeue(struct batch *b)
{
	for (int i = 0; i < b->count; i++)
		table_requeue(b->a->table, b->entries[i]);
}

static void check_barrier(struct apply *a)
{
	if (a->barrier_fn && apply_is_idle(a)) {
		void (*fn)(void *) = a->barrier_fn;
		a->barrier_fn = NULL;
		fn(a->barrier_ctx);
	}
}

static void on_batch_reply(void *arg, const redisReply *reply)
{
	struct batch *b = arg;
	struct apply *a = b->a;
	a->inflight--;
	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
		long long applied = 0, stale = 0, changes = 0;
		(void)aredis_reply_ll(reply->element[0], &applied);
		(void)aredis_reply_ll(reply->element[1], &stale);
		(void)aredis_reply_ll(reply->element[2], &changes);
		a->stats.applied += (uint64_t)applied;
		a->stats.stale += (uint64_t)stale;
		a->stats.changes += (uint64_t)changes;
		a->stats.batches++;
	} else {
		a->stats.batches_failed++;
		requeue(b);
		if (lease_is_fenced_reply(reply)) {
			lease_fenced(a->lease);
		} else if (reply) {
			/* Redis refused (OOM, a script error): pause, then retry */
			if (a->errors_logged++ % 100 == 0)
				log_error("apply: Redis refused a batch of %d statuses: %.200s%s",
					  b->count,
					  reply->type == REDIS_REPLY_ERROR ? reply->str
									   : "unexpected reply",
					  a->errors_logged > 1 ? " (repeated)" : "");
			if (!a->is_paused) {
				a->is_paused = true;
				struct timeval tv = {1, 0};
				evtimer_add(a->pause_ev, &tv);
			}
		}
	}
	free(b->entries);
	free(b);
	apply_kick(a);
}

static const char flag_room[APPLY_BATCH_MAX + 1];

/* Write a run's charger count and flags into the arguments reserved. */
static void end_run(struct rcmd *c, int arg, int count, const char *flags)
{
	if (arg < 0 || c->failed)
		return;
	char text[16];
	int len = snprintf(text, sizeof(text), "%d", count);
	memcpy(c->text.data + c->offs[arg], text, (size_t)len);
	c->lens[arg] = (size_t)len;
	memcpy(c->text.data + c->offs[arg + 1], flags, (size_t)count);
	c->lens[arg + 1] = (size_t)count;
}

/* Build and send one batch from the queue; false when nothing was sent. */
static bool send_batch(struct apply *a)
{
	struct table *t = a->table;
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return false;
	b->a = a;
	b->entries = malloc((size_t)a->opts.batch_size * sizeof(*b->entries));
	if (!b->entries) {
		free(b);
		return false;
	}
	struct rcmd *c = &a->cmd;
	rcmd_reset(c);
	rcmd_evalsha(c, a->r, a->script, 2);
	rcmd_adds(c, RKEYS_LEASE);
	rcmd_adds(c, RKEYS_CHANGES);
	rcmd_adds(c, lease_token(a->lease));
	rcmd_adds(c, RKEYS_STATION_PREFIX);
	rcmd_adds(c, RKEYS_AVAIL_PREFIX);
	rcmd_adds(c, RKEYS_QUICK_PREFIX);
	rcmd_addll(c, RKEYS_CHANGES_MAXLEN);
	/* runs of one station: statId, count and flags (patched when the run
	 * ends), then chgerId and value per charger */
	long index;
	const char *run_stat_id = NULL;
	int run_count = 0, run_arg = -1;
	char value[32], run_flags[APPLY_BATCH_MAX];
	while (b->count < a->opts.batch_size && (index = table_take_dirty(t)) >= 0) {
		const struct table_entry *e = table_at(t, index);
		b->entries[b->count++] = index;
		if (!run_stat_id || strcmp(run_stat_id, e->stat_id) != 0) {
			end_run(c, run_arg, run_count, run_flags);
			run_stat_id = e->stat_id;
			run_count = 0;
			rcmd_adds(c, e->stat_id);
			run_arg = c->argc;
			rcmd_adds(c, "00000"); /* room for the count */
			/* room for the flags of the chargers this batch can still take */
			rcmd_add(c, flag_room, (size_t)(a->opts.batch_size - b->count + 1));
		}
		run_flags[run_count++] =
			(char)('0' + (e->flags & (TABLE_QUICK_KNOWN | TABLE_QUICK | TABLE_SEED)));
		int len = rkeys_status_format(value, sizeof(value), e->stat, e->updated);
		rcmd_adds(c, e->chger_id);
		rcmd_add(c, value, (size_t)len);
	}
	end_run(c, run_arg, run_count, run_flags);
	if (b->count > 0 && aredis_send(a->r, c, on_batch_reply, b)) {
		a->inflight++;
		return true;
	}
	requeue(b);
	free(b->entries);
	free(b);
	return false;
}

static void pump(struct apply *a)
{
	while (!a->is_paused && lease_is_held(a->lease) && aredis_is_ready(a->r) &&
	       a->inflight < (size_t)a->opts.max_inflight && table_dirty_count(a->table) > 0)
		if (!send_batch(a))
			break;
	check_barrier(a);
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void on_pause_over(evutil_socket_t fd, short what, void *arg)
{
	struct apply *a = arg;
	a->is_paused = false;
	pump(a);
}

struct apply *apply_new(struct event_base *base, struct aredis *r, struct lease *l, struct table *t,
			const struct apply_opts *opts)
{
	struct apply *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->base = base;
	a->r = r;
	a->lease = l;
	a->table = t;
	a->opts = *opts;
	if (a->opts.batch_size < 1)
		a->opts.batch_size = 1;
	if (a->opts.batch_size > APPLY_BATCH_MAX)
		a->opts.batch_size = APPLY_BATCH_MAX;
	if (a->opts.max_inflight < 1)
		a->opts.max_inflight = 1;
	rcmd_init(&a->cmd);
	a->script = aredis_script(r, apply_lua);
	a->pump_ev = event_new(base, -1, 0, on_pump, a);
	a->pause_ev = evtimer_new(base, on_pause_over, a);
	if (a->script < 0 || !a->pump_ev || !a->pause_ev) {
		apply_free(a);
		return NULL;
	}
	return a;
}

void apply_free(struct apply *a)
{
	if (!a)
		return;
	if (a->pump_ev)
		event_free(a->pump_ev);
	if (a->pause_ev)
		event_free(a->pause_ev);
	rcmd_free(&a->cmd);
	free(a);
}

void apply_kick(struct apply *a)
{
	event_active(a->pump_ev, EV_TIMEOUT, 0);
}

bool apply_is_idle(const struct apply *a)
{
	return a->inflight == 0 && table_dirty_count(a->table) == 0;
}

size_t apply_inflight(const struct apply *a)
{
	return a->inflight;
}

const struct apply_stats *apply_stats(const struct apply *a)
{
	return &a->stats;
}

void apply_barrier(struct apply *a, void (*fn)(void *ctx), void *ctx)
{
	a->barrier_fn = fn;
	a->barrier_ctx = ctx;
	apply_kick(a);
}
