#include "apply.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mirror.h"
#include "model.h"
#include "rkeys.h"

/* The fence, run between WATCH (the lease and ev:fenced) and MULTI: when
 * the lease does not hold this instance's token it touches ev:fenced,
 * which makes the EXEC that follows abort. KEYS[1] the lease, KEYS[2]
 * ev:fenced; ARGV[1] the token. Returns 1 when the lease is ours. */
static const char fence_lua[] = "-- fence: abort the caller's MULTI unless it holds the lease\n"
				"if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end\n"
				"redis.call('INCR', KEYS[2])\n"
				"return 0\n";

/* Pending stations whose value a batch writes beyond its own stations' (a
 * load's repairs, removals). */
#define AV_PER_BATCH 1000

/* One MULTI block in flight. */
struct batch {
	struct apply *a; /* borrowed */
	long *entries;	 /* owned: table indexes, requeued on failure */
	int count;
	uint64_t applied, stale, changes, removed;
	int64_t lease_stamp; /* the block extends the lease from about then */
};

enum mirror_state {
	MIRROR_NONE,	/* the table's stored state is not Redis': load before writing */
	MIRROR_LOADING, /* a load runs, begun in the epoch noted */
	MIRROR_READY,	/* loaded in the epoch noted, kept since by every write queued */
};

struct apply {
	struct event_base *base; /* borrowed */
	struct aredis *r;	 /* borrowed */
	struct lease *lease;	 /* borrowed */
	struct table *table;	 /* borrowed */
	struct mirror *mirror;	 /* owned */
	struct apply_opts opts;
	int fence_script;
	enum mirror_state mstate;
	uint64_t epoch_connects, epoch_leases; /* the connection and lease the mirror is of */
	struct event *pump_ev;	/* owned: deferred pump */
	struct event *pause_ev; /* owned: the pause after an error reply */
	bool is_paused;
	size_t inflight;
	struct apply_stats stats;
	struct rcmd cmd;    /* owned: the block's MSET */
	struct buf value;   /* owned: one station's value */
	struct rpipe block; /* owned: the batch's block, sent whole at its end */
	int64_t busy_since_ms; /* the first block sent since the writer was idle; 0: idle */
	void (*barrier_fn)(void *ctx);
	void *barrier_ctx;
	uint64_t errors_logged;
};

static void requeue(struct batch *b)
{
	for (int i = 0; i < b->count; i++)
		table_requeue(b->a->table, b->entries[i]);
}

static void batch_free(struct batch *b)
{
	if (b)
		free(b->entries);
	free(b);
}

static void check_barrier(struct apply *a)
{
	if (!apply_is_idle(a))
		return;
	if (a->barrier_fn) {
		void (*fn)(void *) = a->barrier_fn;
		a->barrier_fn = NULL;
		fn(a->barrier_ctx);
	}
	if (apply_is_idle(a))
		a->busy_since_ms = 0;
}

static void pause_writes(struct apply *a)
{
	if (!a->is_paused) {
		a->is_paused = true;
		struct timeval tv = {1, 0};
		evtimer_add(a->pause_ev, &tv);
	}
}

static void refused(struct apply *a, int count, const char *why)
{
	if (a->errors_logged++ % 100 == 0)
		log_error("apply: Redis refused a batch of %d statuses: %.200s%s", count, why,
			  a->errors_logged > 1 ? " (repeated)" : "");
	pause_writes(a);
}

static void on_exec_reply(void *arg, const redisReply *reply)
{
	struct batch *b = arg;
	struct apply *a = b->a;
	a->inflight--;
	const char *error = NULL;
	if (reply && reply->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < reply->elements && !error; i++)
			if (reply->element[i]->type == REDIS_REPLY_ERROR)
				error = reply->element[i]->str;
	if (reply && reply->type == REDIS_REPLY_ARRAY && !error) {
		lease_extended(a->lease, b->lease_stamp);
		a->stats.applied += b->applied;
		a->stats.stale += b->stale;
		a->stats.changes += b->changes;
		a->stats.removed += b->removed;
		a->stats.batches++;
	} else {
		/* what Redis holds is not what the table says: load it again
		 * before the next write */
		a->mstate = MIRROR_NONE;
		a->stats.batches_failed++;
		requeue(b);
		if (reply && reply->type == REDIS_REPLY_NIL) {
			/* the fence touched ev:fenced, or the lease changed hands
			 * between WATCH and EXEC: another instance may write */
			lease_fenced(a->lease);
		} else if (reply) {
			refused(a, b->count,
				error ? error
				      : reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
		}
	}
	batch_free(b);
	apply_kick(a);
}

/* WATCH the lease, the fence, MULTI: the start of a batch's block. The
 * fence's answer is not awaited: when it found another token, EXEC's
 * reply is nil. The replies before EXEC's (OK, the fence's, +QUEUED) are
 * not looked at: a refusal shows again in EXEC's (EXECABORT). */
static void open_block(struct apply *a)
{
	const char *watch[] = {"WATCH", RKEYS_LEASE, RKEYS_FENCED};
	const char *multi[] = {"MULTI"};
	struct rcmd *c = &a->cmd;
	rpipe_reset(&a->block);
	rpipe_addv(&a->block, 3, watch);
	rcmd_reset(c);
	rcmd_evalsha(c, a->r, a->fence_script, 2);
	rcmd_adds(c, RKEYS_LEASE);
	rcmd_adds(c, RKEYS_FENCED);
	rcmd_adds(c, lease_token(a->lease));
	rpipe_add(&a->block, c);
	rpipe_addv(&a->block, 1, multi);
}

/* The block's last commands: the lease extended, the token log (when
 * kept), EXEC; then the block goes, whole. */
static bool close_block(struct apply *a, struct batch *b)
{
	char period[24];
	snprintf(period, sizeof(period), "%d", lease_period_ms(a->lease));
	const char *extend[] = {"PEXPIRE", RKEYS_LEASE, period};
	rpipe_addv(&a->block, 3, extend);
	if (a->opts.token_log > 0) {
		const char *push[] = {"RPUSH", RKEYS_WRITERS, lease_token(a->lease)};
		char keep[24];
		snprintf(keep, sizeof(keep), "%d", -a->opts.token_log);
		const char *trim[] = {"LTRIM", RKEYS_WRITERS, keep, "-1"};
		rpipe_addv(&a->block, 3, push);
		rpipe_addv(&a->block, 4, trim);
	}
	const char *exec[] = {"EXEC"};
	rpipe_addv(&a->block, 1, exec);
	b->lease_stamp = lease_stamp(a->lease);
	return aredis_send_pipe(a->r, &a->block, on_exec_reply, b);
}

/* The stations' values a block writes, gathered in a->cmd: one MSET of
 * every station's whole value (rkeys.h), and DEL of a station left with no
 * charger. */
static void put_station(struct apply *a, uint32_t station, int *pairs)
{
	const char *stat_id;
	char key[RKEYS_KEY_MAX];
	size_t chargers = table_station_format(a->table, station, &stat_id, &a->value);
	if (!buf_ok(&a->value)) {
		/* out of memory: not written; what Redis holds is loaded again */
		a->mstate = MIRROR_NONE;
		return;
	}
	int key_len = rkeys_station(key, sizeof(key), stat_id);
	if (chargers == 0) {
		const char *argv[] = {"DEL", key};
		rpipe_addv(&a->block, 2, argv);
		return;
	}
	if (*pairs == 0) {
		rcmd_reset(&a->cmd);
		rcmd_adds(&a->cmd, "MSET");
	}
	rcmd_add(&a->cmd, key, (size_t)key_len);
	rcmd_add(&a->cmd, a->value.data ? a->value.data : "", a->value.len);
	(*pairs)++;
}

static void add_change(struct apply *a, const struct table_entry *e, bool gone)
{
	char stat[4], updated[24], maxlen[24];
	snprintf(stat, sizeof(stat), "%d", e->stat);
	snprintf(updated, sizeof(updated), "%lld", (long long)e->updated);
	snprintf(maxlen, sizeof(maxlen), "%d", RKEYS_CHANGES_MAXLEN);
	const char *argv[] = {"XADD", RKEYS_CHANGES, "MAXLEN", "~", maxlen, "*", "s",
			      e->stat_id, "c", e->chger_id, "st", stat, "t", updated};
	const char *removed[] = {"XADD", RKEYS_CHANGES, "MAXLEN", "~", maxlen, "*", "s",
				 e->stat_id, "c", e->chger_id, "gone", "1"};
	if (gone)
		rpipe_addv(&a->block, 12, removed);
	else
		rpipe_addv(&a->block, 14, argv);
}

/* The values of the stations the batch's chargers belong to, then of up to
 * AV_PER_BATCH other pending stations (a load's repairs, a removal). */
static void add_stations(struct apply *a, const struct batch *b)
{
	int pairs = 0;
	for (int i = 0; i < b->count; i++) {
		uint32_t station = table_at(a->table, b->entries[i])->station;
		if (table_av_claim(a->table, station))
			put_station(a, station, &pairs);
	}
	uint32_t station;
	for (int n = 0; n < AV_PER_BATCH && (station = table_av_take(a->table)) != 0; n++)
		put_station(a, station, &pairs);
	if (pairs > 0)
		rpipe_add(&a->block, &a->cmd);
}

enum sent {
	SENT_BLOCK,   /* a MULTI block went */
	SENT_NOTHING, /* every entry taken was as Redis holds it: no block needed */
	SENT_FAILED,  /* out of memory, or not connected: entries requeued */
};

/* Build one batch's block from the queue and send it. */
static enum sent send_batch(struct apply *a)
{
	struct table *t = a->table;
	struct batch *b = calloc(1, sizeof(*b));
	if (!b || !(b->entries = malloc((size_t)a->opts.batch_size * sizeof(*b->entries)))) {
		batch_free(b);
		return SENT_FAILED;
	}
	b->a = a;
	bool is_open = false;
	long index;
	while (b->count < a->opts.batch_size && (index = table_take_dirty(t)) >= 0) {
		b->entries[b->count++] = index;
		const struct table_entry *e = table_at(t, index);
		bool stored = e->stored_flags & TABLE_STORED;
		if (e->flags & TABLE_GONE) {
			/* removed upstream (prune.c): its station is written without it */
			if (stored) {
				if (!is_open)
					open_block(a);
				is_open = true;
				add_change(a, e, true);
				b->changes++;
				b->removed++;
				table_unstore(t, index, true);
			}
			continue;
		}
		bool newer = !stored || e->updated > e->stored_updated;
		bool in_quick = e->stored_flags & TABLE_STORED_QUICK;
		bool want_quick = (e->flags & TABLE_QUICK_KNOWN) ? (e->flags & TABLE_QUICK) : in_quick;
		if (!newer) {
			b->stale++;
			if (want_quick == in_quick)
				continue;
		}
		if (!is_open)
			open_block(a);
		is_open = true;
		if (newer) {
			b->applied++;
			/* a charger's first sight from a sweep or re-apply seeds */
			if (stored || !(e->flags & TABLE_SEED)) {
				add_change(a, e, false);
				b->changes++;
			}
		}
		/* not newer: the stored status again, with the quick flag changed */
		table_store(t, index, newer, want_quick);
	}
	if (table_av_pending(t) > 0) {
		if (!is_open)
			open_block(a);
		is_open = true;
		add_stations(a, b);
	}
	if (!is_open) {
		/* nothing newer than Redis holds: no block */
		a->stats.stale += b->stale;
		batch_free(b);
		return SENT_NOTHING;
	}
	if (close_block(a, b)) {
		if (a->busy_since_ms == 0)
			a->busy_since_ms = monotonic_ms();
		a->inflight++;
		return SENT_BLOCK;
	}
	/* the stored state already counts the block as written: load it again */
	a->mstate = MIRROR_NONE;
	requeue(b);
	batch_free(b);
	return SENT_FAILED;
}

static bool mirror_is_current(const struct apply *a)
{
	return a->epoch_connects == aredis_connects(a->r) &&
	       a->epoch_leases == lease_acquisitions(a->lease);
}

static void on_loaded(void *ctx, bool ok)
{
	struct apply *a = ctx;
	if (a->mstate != MIRROR_LOADING)
		return;
	a->mstate = ok && mirror_is_current(a) ? MIRROR_READY : MIRROR_NONE;
	if (a->mstate == MIRROR_READY)
		log_info("apply: %llu chargers loaded from Redis; %zu stations' availability "
			 "to rewrite",
			 (unsigned long long)mirror_loaded(a->mirror),
			 table_av_pending(a->table));
	else if (!ok)
		pause_writes(a);
	apply_kick(a);
}

/* The writer's Redis state is this connection's and this lease's, loaded:
 * else load it (once nothing is in flight). */
static bool mirror_ready(struct apply *a)
{
	if (a->mstate != MIRROR_NONE && !mirror_is_current(a)) {
		mirror_cancel(a->mirror);
		a->mstate = MIRROR_NONE;
	}
	if (a->mstate == MIRROR_READY)
		return true;
	if (a->mstate == MIRROR_NONE && a->inflight == 0) {
		a->mstate = MIRROR_LOADING;
		a->epoch_connects = aredis_connects(a->r);
		a->epoch_leases = lease_acquisitions(a->lease);
		mirror_load(a->mirror, on_loaded, a);
	}
	return false;
}

static bool has_work(const struct apply *a)
{
	return table_dirty_count(a->table) > 0 || table_av_pending(a->table) > 0;
}

static void pump(struct apply *a)
{
	if (!a->is_paused && lease_is_held(a->lease) && aredis_is_ready(a->r) && mirror_ready(a))
		while (a->inflight < (size_t)a->opts.max_inflight && has_work(a) &&
		       send_batch(a) != SENT_FAILED)
			;
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
	buf_init(&a->value);
	rpipe_init(&a->block);
	a->fence_script = aredis_script(r, fence_lua);
	a->mirror = mirror_new(r, t);
	a->pump_ev = event_new(base, -1, 0, on_pump, a);
	a->pause_ev = evtimer_new(base, on_pause_over, a);
	if (a->fence_script < 0 || !a->mirror || !a->pump_ev || !a->pause_ev) {
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
	mirror_free(a->mirror);
	rcmd_free(&a->cmd);
	buf_free(&a->value);
	rpipe_free(&a->block);
	free(a);
}

void apply_kick(struct apply *a)
{
	event_active(a->pump_ev, EV_TIMEOUT, 0);
}

bool apply_is_idle(const struct apply *a)
{
	return a->inflight == 0 && !has_work(a);
}

size_t apply_inflight(const struct apply *a)
{
	return a->inflight;
}

const struct apply_stats *apply_stats(const struct apply *a)
{
	return &a->stats;
}

int64_t apply_busy_ms(const struct apply *a)
{
	return a->busy_since_ms ? monotonic_ms() - a->busy_since_ms : 0;
}

void apply_barrier(struct apply *a, void (*fn)(void *ctx), void *ctx)
{
	a->barrier_fn = fn;
	a->barrier_ctx = ctx;
	apply_kick(a);
}
