#include "congest.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kst.h"
#include "log.h"
#include "model.h"
#include "rkeys.h"

/* Station keys asked per SCAN call (a hint to Redis, which walks this many
 * buckets of the whole keyspace). */
#define SCAN_COUNT "1000"
/* Status codes the script classifies: a charger's status is
 * "<code>:..." (rkeys_live_charger_put), code 0..99. */
#define CODES 100
/* The sample script spells rkeys.h's layouts in Lua: tie its literals to
 * the header (u12 counters at index 3 * slot + counter, 168 slots, 4095). */
_Static_assert(RKEYS_CG_SAMPLES == 0 && RKEYS_CG_USES == 1 && RKEYS_CG_OUT_OF_SERVICE == 2 &&
		       RKEYS_CG_COUNTERS == 3 && RKEYS_CONGESTION_COUNTER_BITS == 12,
	       "sample_lua writes u12 at #(3 * slot + counter)");
_Static_assert(RKEYS_CONGESTION_SLOTS == 168 && RKEYS_CONGESTION_COUNTER_MAX == 4095,
	       "sample_lua converts 168 slots and saturates at 4095");
_Static_assert(RKEYS_CONGESTION_V1_VALUE_BYTES == 168 * 4 + 4,
	       "sample_lua reads layout 1 as u16 pairs, then the u32 marker");

/* KEYS[1] the lease, KEYS[2] the heartbeat. ARGV[1] token, ARGV[2] tick.
 * 0: that tick is already done; 1: begun. */
static const char begin_lua[] =
	"-- sample begin: mark the tick started unless done\n" LEASE_FENCE_LUA
	"local tick = tonumber(ARGV[2])\n"
	"local done = tonumber(redis.call('HGET', KEYS[2], 'sample_done')) or 0\n"
	"if done >= tick then return 0 end\n"
	"local started = tonumber(redis.call('HGET', KEYS[2], 'sample_started')) or 0\n"
	"if started < tick then redis.call('HSET', KEYS[2], 'sample_started', tick) end\n"
	"return 1\n";

/* KEYS[1] the lease, KEYS[2] the heartbeat. ARGV[1] token, ARGV[2] tick.
 * Returns the samples finished, ever. */
static const char end_lua[] =
	"-- sample end: count the tick once\n" LEASE_FENCE_LUA "local tick = tonumber(ARGV[2])\n"
	"local done = tonumber(redis.call('HGET', KEYS[2], 'sample_done')) or 0\n"
	"if done < tick then\n"
	"  redis.call('HSET', KEYS[2], 'sample_done', tick)\n"
	"  return redis.call('HINCRBY', KEYS[2], 'samples', 1)\n"
	"end\n"
	"return tonumber(redis.call('HGET', KEYS[2], 'samples')) or 0\n";

/* KEYS[1] the lease, KEYS[2..] station keys from SCAN (rkeys.h: each
 * charger " <chgerId>=<stat>:..." in the value; MGET reads a key of
 * another type as absent). ARGV[1] token,
 * [2] station prefix, [3] congestion prefix, [4] tick, [5] slot, [6] the
 * value's size, [7] the marker's u32 index, [8] the size of a layout-1
 * value, [9] one class letter per status code 0..99 ('u' a use, 'o' out of
 * service, '-' neither: status_classes). A counter string is created at its
 * full size by SET (BITFIELD growing it would allocate double). A layout-1
 * value (rkeys.h) is rewritten in place to the current layout the first
 * time it is touched: its samples and uses saturated at 4095, its marker
 * kept, out of service 0 (the old layout never counted it), all in the
 * script's one atomic step. The current marker's u32 lies past a layout-1
 * value's end and reads 0, so only a value never sampled or a layout-1 one
 * costs the STRLEN. Returns {counted, skipped}. */
static const char sample_lua[] =
	"-- sample: one sample (a use when charging, an out of service when down) per "
	"charger, once per tick\n" LEASE_FENCE_LUA "local stlen, cgp = #ARGV[2], ARGV[3]\n"
	"local tick, slot = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
	"local size, mark = tonumber(ARGV[6]), '#' .. ARGV[7]\n"
	"local v1size, classes = tonumber(ARGV[8]), ARGV[9]\n"
	"local s_at, u_at, o_at = '#' .. (3 * slot), '#' .. (3 * slot + 1), '#' .. (3 * slot + 2)\n"
	"local function convert(ck)\n"
	"  local old = redis.call('GET', ck)\n"
	"  local set = {}\n"
	"  for sl = 0, 167 do\n"
	"    for k = 0, 1 do\n"
	"      local p = 4 * sl + 2 * k + 1\n"
	"      local n = math.min(string.byte(old, p) * 256 + string.byte(old, p + 1), 4095)\n"
	"      if n > 0 then\n"
	"        set[#set + 1] = 'SET'; set[#set + 1] = 'u12'\n"
	"        set[#set + 1] = '#' .. (3 * sl + k); set[#set + 1] = n\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  local b1, b2, b3, b4 = string.byte(old, v1size - 3, v1size)\n"
	"  local last = ((b1 * 256 + b2) * 256 + b3) * 256 + b4\n"
	"  set[#set + 1] = 'SET'; set[#set + 1] = 'u32'; set[#set + 1] = mark\n"
	"  set[#set + 1] = last\n"
	"  redis.call('SET', ck, string.rep('\\0', size))\n"
	"  redis.call('BITFIELD', ck, unpack(set))\n"
	"  return last\n"
	"end\n"
	"local counted, skipped = 0, 0\n"
	"local values = redis.call('MGET', unpack(KEYS, 2))\n"
	"for k = 2, #KEYS do\n"
	"  local sid, value = string.sub(KEYS[k], stlen + 1), values[k - 1] or ''\n"
	"  for cid, code in string.gmatch(value, ' (%w+)=(%d+):') do\n"
	"    local ck = cgp .. sid .. ':' .. cid\n"
	"    local last = redis.call('BITFIELD', ck, 'GET', 'u32', mark)[1]\n"
	"    if last == 0 then\n"
	"      local len = redis.call('STRLEN', ck)\n"
	"      if len == 0 then\n"
	"        redis.call('SET', ck, string.rep('\\0', size))\n"
	"      elseif len == v1size then\n"
	"        last = convert(ck)\n"
	"      end\n"
	"    end\n"
	"    if last < tick then\n"
	"      code = tonumber(code)\n"
	"      local class = string.sub(classes, code + 1, code + 1)\n"
	"      if class == '' then class = '-' end\n"
	"      local use, down = 0, 0\n"
	"      if class == 'u' then use = 1 elseif class == 'o' then down = 1 end\n"
	"      redis.call('BITFIELD', ck, 'OVERFLOW', 'SAT', 'INCRBY', 'u12', s_at, 1,\n"
	"                 'INCRBY', 'u12', u_at, use, 'INCRBY', 'u12', o_at, down,\n"
	"                 'SET', 'u32', mark, tick)\n"
	"      counted = counted + 1\n"
	"    else\n"
	"      skipped = skipped + 1\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return {counted, skipped}\n";

/* The sampler's state. */
enum congest_state {
	CG_INACTIVE,  /* standby or stopping: nothing runs */
	CG_RESUMING,  /* reading the heartbeat for a tick to finish */
	CG_IDLE,      /* active, waiting for the next tick */
	CG_BEGINNING, /* the begin script is in flight */
	CG_SCANNING,  /* SCAN pages and their sample scripts in flight */
	CG_ENDING,    /* the end script is in flight */
};

struct congest {
	struct event_base *base;     /* borrowed */
	struct aredis *r;	     /* borrowed */
	struct lease *lease;	     /* borrowed */
	const struct rtclock *clock; /* borrowed */
	int interval_s;
	int begin_script, end_script, sample_script;
	enum congest_state state;
	struct event *tick_ev;	/* owned: the next tick boundary */
	struct event *retry_ev; /* owned: a failed tick tried again */
	uint64_t generation;	/* bumped per tick and on deactivate: stale replies ignored */
	int64_t tick;		/* the tick being run, Unix s */
	int slot;
	bool scan_done;
	int pages_inflight;
	struct congest_stats stats;
	struct rcmd cmd;	     /* owned */
	char classes[CODES + 1]; /* the sample script's ARGV[9] */
};

/* A request's context. */
struct cg_req {
	struct congest *c;
	uint64_t generation;
};

/* Per status code, what a sample of it counts besides the sample: model.h
 * says which codes are a use and which are out of service. */
static void status_classes(char out[CODES + 1])
{
	for (int code = 0; code < CODES; code++)
		out[code] = code == MODEL_STATUS_CHARGING_IN_PROGRESS ? 'u'
			    : model_status_out_of_service(code)   ? 'o'
								   : '-';
	out[CODES] = '\0';
}

int congest_slot(time_t t)
{
	return rkeys_congestion_slot(kst_weekday(t), kst_hour(t));
}

static struct cg_req *req_new(struct congest *c)
{
	struct cg_req *q = malloc(sizeof(*q));
	if (q)
		*q = (struct cg_req){c, c->generation};
	return q;
}

/* The request's sampler, or NULL when the reply is stale. Frees q. */
static struct congest *req_take(struct cg_req *q)
{
	struct congest *c = q->c;
	bool current = q->generation == c->generation;
	free(q);
	return current ? c : NULL;
}

static void arm_next_tick(struct congest *c)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	int64_t next = ((int64_t)now.tv_sec / c->interval_s + 1) * c->interval_s;
	int64_t wait_us = (next - (int64_t)now.tv_sec) * 1000000 - now.tv_usec;
	if (wait_us < 1000)
		wait_us = 1000;
	struct timeval tv = {(time_t)(wait_us / 1000000), (suseconds_t)(wait_us % 1000000)};
	evtimer_add(c->tick_ev, &tv);
}

static void run_tick(struct congest *c, int64_t tick);

/* A request failed: retry the tick in a second while it is still the
 * current one; the markers make a rerun count only what was not counted. */
static void tick_failed(struct congest *c, const redisReply *reply, const char *step)
{
	c->generation++;
	c->state = CG_IDLE;
	if (lease_is_fenced_reply(reply)) {
		lease_fenced(c->lease);
		return;
	}
	if (reply)
		log_warn("congestion sample %lld: %s refused: %.200s", (long long)c->tick, step,
			 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	struct timeval tv = {1, 0};
	evtimer_add(c->retry_ev, &tv);
}

static void on_end_reply(void *arg, const redisReply *reply)
{
	struct congest *c = req_take(arg);
	if (!c)
		return;
	long long samples;
	if (!aredis_reply_ll(reply, &samples)) {
		tick_failed(c, reply, "the end mark");
		return;
	}
	c->generation++;
	c->state = CG_IDLE;
	c->stats.ticks_done++;
	c->stats.last_done = c->tick;
	log_debug("congestion sample %lld done (slot %d); %lld samples in all", (long long)c->tick,
		  c->slot, samples);
}

/* The begin or end mark of the current tick: a fenced script on the
 * heartbeat, answered to fn. */
static void send_mark(struct congest *c, int script, aredis_reply_fn fn, const char *step)
{
	char tick[24];
	snprintf(tick, sizeof(tick), "%lld", (long long)c->tick);
	struct cg_req *q = req_new(c);
	const char *argv[] = {"EVALSHA",       aredis_script_sha(c->r, script), "2", RKEYS_LEASE,
			      RKEYS_HEARTBEAT, lease_token(c->lease),		tick};
	if (!q || !aredis_sendv(c->r, fn, q, 7, argv)) {
		free(q);
		tick_failed(c, NULL, step);
	}
}

static void send_end(struct congest *c)
{
	c->state = CG_ENDING;
	send_mark(c, c->end_script, on_end_reply, "the end mark");
}

static void maybe_end(struct congest *c)
{
	if (c->state == CG_SCANNING && c->scan_done && c->pages_inflight == 0)
		send_end(c);
}

static void on_page_reply(void *arg, const redisReply *reply)
{
	struct congest *c = req_take(arg);
	if (!c)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
		tick_failed(c, reply, "a sample page");
		return;
	}
	long long counted = 0, skipped = 0;
	(void)aredis_reply_ll(reply->element[0], &counted);
	(void)aredis_reply_ll(reply->element[1], &skipped);
	c->stats.chargers_counted += (uint64_t)counted;
	c->stats.chargers_skipped += (uint64_t)skipped;
	c->pages_inflight--;
	maybe_end(c);
}

static bool send_page(struct congest *c, const redisReply *keys)
{
	struct rcmd *cmd = &c->cmd;
	rcmd_reset(cmd);
	rcmd_evalsha(cmd, c->r, c->sample_script, (int)keys->elements + 1);
	rcmd_adds(cmd, RKEYS_LEASE);
	for (size_t i = 0; i < keys->elements; i++) {
		const redisReply *k = keys->element[i];
		if (k->type != REDIS_REPLY_STRING)
			return false;
		rcmd_add(cmd, k->str, k->len);
	}
	rcmd_adds(cmd, lease_token(c->lease));
	rcmd_adds(cmd, RKEYS_STATION_PREFIX);
	rcmd_adds(cmd, RKEYS_CONGESTION_PREFIX);
	rcmd_addll(cmd, c->tick);
	rcmd_addll(cmd, c->slot);
	rcmd_addll(cmd, RKEYS_CONGESTION_VALUE_BYTES);
	rcmd_addll(cmd, RKEYS_CONGESTION_MARK_U32);
	rcmd_addll(cmd, RKEYS_CONGESTION_V1_VALUE_BYTES);
	rcmd_add(cmd, c->classes, CODES);
	struct cg_req *q = req_new(c);
	if (!q || !aredis_send(c->r, cmd, on_page_reply, q)) {
		free(q);
		return false;
	}
	c->pages_inflight++;
	return true;
}

static bool send_scan(struct congest *c, const char *cursor);

static void on_scan_reply(void *arg, const redisReply *reply)
{
	struct congest *c = req_take(arg);
	if (!c)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_ARRAY) {
		tick_failed(c, reply, "SCAN");
		return;
	}
	const redisReply *keys = reply->element[1];
	if (keys->elements > 0 && !send_page(c, keys)) {
		tick_failed(c, NULL, "a sample page");
		return;
	}
	const char *cursor = reply->element[0]->str;
	if (strcmp(cursor, "0") == 0) {
		c->scan_done = true;
		maybe_end(c);
	} else if (!send_scan(c, cursor)) {
		tick_failed(c, NULL, "SCAN");
	}
}

static bool send_scan(struct congest *c, const char *cursor)
{
	struct cg_req *q = req_new(c);
	const char *argv[] = {"SCAN",  cursor,	   "MATCH", RKEYS_STATION_PREFIX "*",
			      "COUNT", SCAN_COUNT, "TYPE",  "string"};
	if (!q || !aredis_sendv(c->r, on_scan_reply, q, 8, argv)) {
		free(q);
		return false;
	}
	return true;
}

static void on_begin_reply(void *arg, const redisReply *reply)
{
	struct congest *c = req_take(arg);
	if (!c)
		return;
	long long begun;
	if (!aredis_reply_ll(reply, &begun)) {
		tick_failed(c, reply, "the begin mark");
		return;
	}
	if (begun == 0) { /* another instance finished it */
		c->generation++;
		c->state = CG_IDLE;
		return;
	}
	c->state = CG_SCANNING;
	c->scan_done = false;
	c->pages_inflight = 0;
	if (!send_scan(c, "0"))
		tick_failed(c, NULL, "SCAN");
}

static void run_tick(struct congest *c, int64_t tick)
{
	c->generation++;
	c->tick = tick;
	c->slot = congest_slot(rtclock_at(c->clock, (time_t)tick));
	c->state = CG_BEGINNING;
	send_mark(c, c->begin_script, on_begin_reply, "the begin mark");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct congest *c = arg;
	if (c->state == CG_INACTIVE)
		return;
	arm_next_tick(c);
	int64_t tick = (int64_t)time(NULL) / c->interval_s * c->interval_s;
	if (c->state != CG_IDLE || !aredis_is_ready(c->r)) {
		c->stats.ticks_skipped++;
		log_warn("congestion sample %lld skipped: %s", (long long)tick,
			 c->state != CG_IDLE ? "the previous one is still running"
					     : "Redis is down");
		return;
	}
	evtimer_del(c->retry_ev);
	run_tick(c, tick);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct congest *c = arg;
	if (c->state != CG_IDLE)
		return;
	if (time(NULL) >= c->tick + c->interval_s) {
		c->stats.ticks_skipped++;
		log_warn(
			"congestion sample %lld abandoned: it could not finish within its interval",
			(long long)c->tick);
		return;
	}
	if (!aredis_is_ready(c->r)) {
		struct timeval tv = {1, 0};
		evtimer_add(c->retry_ev, &tv);
		return;
	}
	run_tick(c, c->tick);
}

static void on_resume_reply(void *arg, const redisReply *reply)
{
	struct congest *c = req_take(arg);
	if (!c)
		return;
	c->generation++;
	c->state = CG_IDLE;
	long long started = 0, done = 0;
	if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
		(void)aredis_reply_ll(reply->element[0], &started);
		(void)aredis_reply_ll(reply->element[1], &done);
	}
	if (started > done) {
		log_info("congestion sample %lld was begun and not finished: finishing it",
			 started);
		run_tick(c, started);
	}
}

struct congest *congest_new(struct event_base *base, struct aredis *r, struct lease *l,
			    const struct rtclock *clock, int interval_s)
{
	struct congest *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->r = r;
	c->lease = l;
	c->clock = clock;
	c->interval_s = interval_s > 0 ? interval_s : 1;
	rcmd_init(&c->cmd);
	status_classes(c->classes);
	c->begin_script = aredis_script(r, begin_lua);
	c->end_script = aredis_script(r, end_lua);
	c->sample_script = aredis_script(r, sample_lua);
	c->tick_ev = evtimer_new(base, on_tick, c);
	c->retry_ev = evtimer_new(base, on_retry, c);
	if (c->begin_script < 0 || c->end_script < 0 || c->sample_script < 0 || !c->tick_ev ||
	    !c->retry_ev) {
		congest_free(c);
		return NULL;
	}
	return c;
}

void congest_free(struct congest *c)
{
	if (!c)
		return;
	if (c->tick_ev)
		event_free(c->tick_ev);
	if (c->retry_ev)
		event_free(c->retry_ev);
	rcmd_free(&c->cmd);
	free(c);
}

void congest_activate(struct congest *c)
{
	if (c->state != CG_INACTIVE)
		return;
	c->generation++;
	c->state = CG_RESUMING;
	arm_next_tick(c);
	struct cg_req *q = req_new(c);
	const char *argv[] = {"HMGET", RKEYS_HEARTBEAT, "sample_started", "sample_done"};
	if (!q || !aredis_sendv(c->r, on_resume_reply, q, 4, argv)) {
		free(q);
		c->state = CG_IDLE;
	}
}

void congest_deactivate(struct congest *c)
{
	c->generation++;
	c->state = CG_INACTIVE;
	evtimer_del(c->tick_ev);
	evtimer_del(c->retry_ev);
}

void congest_set_interval(struct congest *c, int interval_s)
{
	if (interval_s < 1 || interval_s == c->interval_s)
		return;
	c->interval_s = interval_s;
	if (c->state != CG_INACTIVE) {
		evtimer_del(c->tick_ev);
		arm_next_tick(c);
	}
}

bool congest_is_busy(const struct congest *c)
{
	return c->state == CG_RESUMING || c->state == CG_BEGINNING || c->state == CG_SCANNING ||
	       c->state == CG_ENDING;
}

const struct congest_stats *congest_stats(const struct congest *c)
{
	return &c->stats;
}
