#include "service.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "admin.h"
#include "apply.h"
#include "aredis.h"
#include "clock.h"
#include "congest.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "poll.h"
#include "prune.h"
#include "restore.h"
#include "rkeys.h"
#include "table.h"

extern char **environ;

/* HSET on the heartbeat, fenced. KEYS[1] the lease, KEYS[2] the heartbeat;
 * ARGV[1] token, then field/value pairs. */
static const char heartbeat_lua[] =
	"-- heartbeat: record progress while holding the lease\n" LEASE_FENCE_LUA
	"redis.call('HSET', KEYS[2], unpack(ARGV, 2))\n"
	"return 1\n";

/* What this instance is doing. */
enum svc_state {
	SVC_STANDBY,  /* no lease (or Redis down): nothing is written */
	SVC_DECIDING, /* lease held: reading the heartbeat to choose sweep, re-apply or polls */
	SVC_ACTIVE,   /* lease held: polling, sweeping when needed, sampling */
	SVC_DRAINING, /* SIGTERM: writes finishing, then the lease is released */
	SVC_STOPPED,  /* the loop is ending */
};

static const char *const state_names[] = {"standby", "deciding", "active", "draining", "stopped"};

/* Metric series the service keeps (lookups done once). */
struct svc_metrics {
	struct metrics *reg; /* owned */
	struct metric_family *polls, *items;
	struct metric *applied, *stale, *changes, *batches, *batches_failed, *removed, *prune_walks;
	struct metric *chargers, *dirty, *redis_up, *redis_connects, *lease_held, *lease_acquired;
	struct metric *ticks_done, *ticks_skipped, *sample_counted, *sample_skipped;
	struct metric *last_poll_ok, *lag, *sweep_seconds, *sweep_items, *fetch_attempts,
		*fetch_retries;
	uint64_t last[16]; /* counter values already exported, per sync slot */
};

struct service {
	const struct cfg_schema *schema;     /* borrowed */
	const char *config_file;	     /* borrowed (argv) */
	struct realtimed_settings *settings; /* owned */
	struct rtclock clock;
	struct event_base *base; /* owned */
	struct aredis *redis;	 /* owned */
	struct lease *lease;	 /* owned */
	struct table *table;	 /* owned */
	struct apply *apply;	 /* owned */
	struct poller *poller;	 /* owned */
	struct congest *congest; /* owned */
	struct admin *admin;	 /* owned */
	struct restore *restore; /* owned */
	struct prune *prune;	 /* owned */
	struct svc_metrics m;
	struct event *sigterm, *sighup, *sigint, *poll_timer, *drain_timer, *drain_check,
		*watchdog; /* owned */
	int heartbeat_script;
	enum svc_state state;
	uint64_t generation; /* bumped per lease change: stale replies ignored */
	bool need_sweep;
	bool has_full_table;	  /* this process swept: the table can re-seed Redis */
	bool redis_back;	  /* the connection came (back): Redis may be older than the table */
	bool sampling;		  /* congest activated for this lease */
	bool seeded;		  /* Redis holds a complete set: sampling may begin */
	bool restore_wanted;	  /* Redis holds no counters: restore before sampling */
	int restore_failures;	  /* restores failed since Redis was found without counters */
	int64_t covered_ms;	  /* start of the last complete pass acknowledged in Redis */
	int64_t pending_cover_ms; /* a complete pass waiting for its barrier */
	bool pending_is_sweep;
	int64_t pending_sweep_started_ms; /* 0: a re-apply from memory, no sweep */
	long pending_sweep_items;
	int64_t sweep_started_ms;
	int64_t swept_ms;	    /* start of the last complete sweep in Redis (sweep_ok_ms) */
	uint16_t sweep_stamp;	    /* the table's stamp of the sweep running */
	uint16_t pending_sweep_stamp; /* ... of the complete sweep waiting for its barrier */
	bool pending_sweep_whole;     /* ... and its items add up to its totalCount */
	int64_t last_poll_start_ms;
	int exit_code;
};

/* A request tagged with the lease generation it belongs to. */
struct svc_req {
	struct service *s;
	uint64_t generation;
	int64_t value_ms;
	bool flag;
};

static int64_t wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static struct svc_req *req_new(struct service *s)
{
	struct svc_req *q = calloc(1, sizeof(*q));
	if (q) {
		q->s = s;
		q->generation = s->generation;
	}
	return q;
}

static struct service *req_take(struct svc_req *q, struct svc_req *copy)
{
	*copy = *q;
	free(q);
	return copy->generation == copy->s->generation ? copy->s : NULL;
}

static void notify_status(struct service *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notify_status(struct service *s, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", text);
}

bool service_check_settings(const struct realtimed_settings *s, char *err, size_t errlen)
{
	int need = s->poll_interval_s + 2 * SERVICE_WINDOW_MARGIN_S;
	if (s->status_period_min * 60 < need) {
		snprintf(err, errlen,
			 "REALTIMED_STATUS_PERIOD: %d minutes does not cover "
			 "REALTIMED_POLL_INTERVAL "
			 "(%d s) plus %d s of overlap; expected at least %d minutes",
			 s->status_period_min, s->poll_interval_s, 2 * SERVICE_WINDOW_MARGIN_S,
			 (need + 59) / 60);
		return false;
	}
	if (s->backoff_max_ms < s->backoff_ms) {
		snprintf(
			err, errlen,
			"REALTIMED_BACKOFF_MAX_MS: %d is below REALTIMED_BACKOFF_MS (%d); expected "
			"at least %d",
			s->backoff_max_ms, s->backoff_ms, s->backoff_ms);
		return false;
	}
	struct rtclock c;
	char why[128];
	if (!rtclock_parse(s->clock, &c, why, sizeof(why))) {
		snprintf(err, errlen, "REALTIMED_CLOCK: '%s' is not valid; expected %s", s->clock,
			 why);
		return false;
	}
	if (s->common.upstream_keys.count == 0) {
		snprintf(err, errlen, "UPSTREAM_KEYS: no service key; expected at least one");
		return false;
	}
	return true;
}

/* ---- sampling ---- */

/* Restores that fail before sampling begins without the snapshot: history
 * matters more than a few samples, but not more than sampling at all. */
#define RESTORE_ATTEMPTS 3

static void start_restore(struct service *s);

/* Sampling begins once Redis holds a complete set of chargers and, when
 * Redis had no counters, once the snapshot's counters are back (its SET NX
 * would keep a counter a sample created first, losing that history). */
static void start_sampling(struct service *s)
{
	if (s->state != SVC_ACTIVE || s->sampling || !s->seeded)
		return;
	if (s->restore_wanted) {
		start_restore(s);
		return;
	}
	if (restore_is_running(s->restore))
		return;
	s->sampling = true;
	congest_activate(s->congest);
}

/* ---- heartbeat ---- */

static void on_heartbeat_reply(void *arg, const redisReply *reply)
{
	struct svc_req q;
	struct service *s = req_take(arg, &q);
	if (!s)
		return;
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		if (lease_is_fenced_reply(reply))
			lease_fenced(s->lease);
		else if (reply)
			log_warn("heartbeat refused: %.200s", reply->str);
		return;
	}
	if (q.value_ms <= 0)
		return; /* an error report */
	if (q.value_ms > s->covered_ms)
		s->covered_ms = q.value_ms;
	metric_set(s->m.last_poll_ok, (double)q.value_ms / 1000.0);
	if (q.flag) {
		s->seeded = true;
		start_sampling(s);
	}
}

/* HSET ev:heartbeat with the given pairs (NULL-terminated), fenced. */
static void heartbeat(struct service *s, int64_t cover_ms, bool is_cover_sweep,
		      const char *const *pairs)
{
	struct rcmd c;
	rcmd_init(&c);
	rcmd_evalsha(&c, s->redis, s->heartbeat_script, 2);
	rcmd_adds(&c, RKEYS_LEASE);
	rcmd_adds(&c, RKEYS_HEARTBEAT);
	rcmd_adds(&c, lease_token(s->lease));
	for (const char *const *p = pairs; *p; p++)
		rcmd_adds(&c, *p);
	struct svc_req *q = req_new(s);
	if (q) {
		q->value_ms = cover_ms;
		q->flag = is_cover_sweep;
	}
	if (!q || !aredis_send(s->redis, &c, on_heartbeat_reply, q))
		free(q);
	rcmd_free(&c);
}

/* ---- restore ---- */

static void start_restore(struct service *s)
{
	if (restore_is_running(s->restore) || !lease_is_held(s->lease))
		return;
	char path[4200], err[512];
	const char *ingestd =
		restore_resolve_ingestd(s->settings->restore_ingestd, path, sizeof(path));
	if (ingestd && restore_start(s->restore, ingestd, s->settings->common.database_url,
				     s->settings->common.redis_url, err, sizeof(err))) {
		s->restore_wanted = false;
		return;
	}
	log_error("restore: %s; sampling without the snapshot's counters",
		  ingestd ? err : "cannot find ingestd (REALTIMED_RESTORE_INGESTD)");
	s->restore_wanted = false;
	start_sampling(s);
}

static void on_restore_done(void *ctx, enum restore_outcome outcome, const char *what)
{
	struct service *s = ctx;
	if (outcome == RESTORE_FAILED) {
		if (++s->restore_failures < RESTORE_ATTEMPTS) {
			log_error("restore: `ingestd congestion --restore` failed (%s); retried at the "
				  "next poll interval, sampling waits",
				  what);
			s->restore_wanted = true;
			return;
		}
		log_error("restore: `ingestd congestion --restore` failed %d times (%s); sampling "
			  "without the snapshot's counters (restore later with `ingestd congestion "
			  "--restore --replace`, which overwrites the samples counted meanwhile)",
			  s->restore_failures, what);
	} else {
		log_info("restore: %s (%s)",
			 outcome == RESTORE_DONE ? "counters seeded from the latest snapshot"
						 : "no snapshot to restore: counters start empty",
			 what);
		if (lease_is_held(s->lease)) {
			char now[24];
			snprintf(now, sizeof(now), "%lld", (long long)wall_ms());
			const char *pairs[] = {"restored_ms", now, NULL};
			heartbeat(s, 0, false, pairs);
		}
	}
	s->restore_wanted = false;
	s->restore_failures = 0;
	start_sampling(s);
}

/* Every status of the complete pass is in Redis: say so. */
static void on_pass_written(void *ctx)
{
	struct service *s = ctx;
	if (s->pending_cover_ms <= 0 || !lease_is_held(s->lease))
		return;
	char cover[24], lag[24], sweep[24];
	snprintf(cover, sizeof(cover), "%lld", (long long)s->pending_cover_ms);
	int64_t newest = table_newest(s->table);
	long long lag_s = newest > 0 ? (long long)(rtclock_now(&s->clock) - newest) : -1;
	snprintf(lag, sizeof(lag), "%lld", lag_s);
	snprintf(sweep, sizeof(sweep), "%lld", (long long)s->pending_cover_ms);
	metric_set(s->m.lag, (double)lag_s);
	const char *pairs[] = {"poll_ok_ms",
			       cover,
			       "lag_s",
			       lag,
			       "instance",
			       lease_token(s->lease),
			       s->pending_is_sweep ? "sweep_ok_ms" : NULL,
			       sweep,
			       "layout",
			       RKEYS_LIVE_LAYOUT,
			       NULL};
	if (s->pending_is_sweep && s->pending_sweep_started_ms > 0) {
		double seconds = (double)(wall_ms() - s->pending_sweep_started_ms) / 1000.0;
		log_info("sweep written: %ld chargers in %.2f s (fetched, parsed and applied); %zu "
			 "known",
			 s->pending_sweep_items, seconds, table_count(s->table));
		metric_set(s->m.sweep_seconds, seconds);
		metric_set(s->m.sweep_items, (double)s->pending_sweep_items);
		s->swept_ms = s->pending_cover_ms;
		/* every page complete and acknowledged: what it did not list is gone,
		 * unless the listing moved while it was paged (a charger may have
		 * slipped between two pages) */
		if (s->pending_sweep_whole)
			prune_start(s->prune, s->pending_sweep_stamp);
		else
			log_warn("sweep: %ld items where totalCount said otherwise (the listing "
				 "moved while paged); nothing pruned until a sweep adds up",
				 s->pending_sweep_items);
	} else if (s->pending_is_sweep) {
		log_info("re-apply written: %zu chargers from memory; writes %.3f s (first block "
			 "sent to last reply)",
			 table_count(s->table), (double)apply_busy_ms(s->apply) / 1000.0);
	}
	/* the sweep (or a re-apply after data loss) seeded Redis: sampling may begin */
	heartbeat(s, s->pending_cover_ms, true, pairs);
	s->pending_cover_ms = 0;
	s->pending_is_sweep = false;
}

/* ---- passes ---- */

static int64_t window_ms(const struct service *s)
{
	return ((int64_t)s->settings->status_period_min * 60 - SERVICE_WINDOW_MARGIN_S) * 1000;
}

static void start_pass(struct service *s)
{
	if (s->state != SVC_ACTIVE || poller_is_busy(s->poller) || !aredis_is_ready(s->redis))
		return;
	int64_t now = wall_ms();
	if (!s->need_sweep && s->covered_ms > 0 && now - s->covered_ms > window_ms(s)) {
		log_warn("no complete poll for %lld s, more than the %d-minute status window "
			 "covers: sweeping all chargers",
			 (long long)((now - s->covered_ms) / 1000), s->settings->status_period_min);
		s->need_sweep = true;
	}
	if (!s->need_sweep && s->swept_ms > 0 &&
	    now - s->swept_ms >= (int64_t)s->settings->sweep_interval_s * 1000) {
		log_info("last complete sweep %lld s ago: sweeping all chargers "
			 "(REALTIMED_SWEEP_INTERVAL)",
			 (long long)((now - s->swept_ms) / 1000));
		s->need_sweep = true;
	}
	enum poll_kind kind = s->need_sweep ? POLL_SWEEP : POLL_STATUS;
	if (!poller_start(s->poller, kind, s->settings->status_period_min)) {
		log_error("cannot start a %s pass (no service key, or out of memory)",
			  poll_kind_name(kind));
		return;
	}
	s->last_poll_start_ms = now;
	if (kind == POLL_SWEEP) {
		s->sweep_started_ms = now;
		s->sweep_stamp = table_new_stamp(s->table);
		log_info("sweep started (getChargerInfo, every page)");
		notify_status(s, "active: sweeping");
	}
}

static void on_item(void *ctx, const struct table_item *item)
{
	struct service *s = ctx;
	enum table_put put = table_put(s->table, item);
	if (put == TABLE_NEWER)
		apply_kick(s->apply);
	else if (put == TABLE_NO_MEMORY)
		log_error("out of memory keeping charger %.*s/%.*s", (int)item->stat_id_len,
			  item->stat_id, (int)item->chger_id_len, item->chger_id);
}

static void on_pass_done(void *ctx, const struct poll_summary *sum)
{
	struct service *s = ctx;
	struct metric *m =
		METRIC_GET(s->m.polls, poll_kind_name(sum->kind), poll_outcome_name(sum->outcome));
	metric_inc(m);
	metric_add(METRIC_GET(s->m.items, poll_kind_name(sum->kind), "accepted"),
		   (double)(sum->items - sum->rejected));
	metric_add(METRIC_GET(s->m.items, poll_kind_name(sum->kind), "rejected"),
		   (double)sum->rejected);
	if (s->state != SVC_ACTIVE)
		return;
	if (sum->outcome == POLL_COMPLETE) {
		log_debug("%s pass complete: %ld pages, %ld items in %.2f s",
			  poll_kind_name(sum->kind), sum->pages, sum->items, sum->seconds);
		if (sum->kind == POLL_SWEEP) {
			s->need_sweep = false;
			s->has_full_table = true;
			s->pending_is_sweep = true;
			s->pending_sweep_started_ms = sum->started_ms;
			s->pending_sweep_items = sum->items;
			s->pending_sweep_stamp = s->sweep_stamp;
			s->pending_sweep_whole = sum->items == sum->total_count;
			notify_status(s, "active: polling");
		}
		if (sum->started_ms > s->pending_cover_ms)
			s->pending_cover_ms = sum->started_ms;
		apply_barrier(s->apply, on_pass_written, s);
		return;
	}
	log_warn("%s pass %s: %ld of %ld pages failed (%s)%s", poll_kind_name(sum->kind),
		 poll_outcome_name(sum->outcome), sum->pages_failed, sum->pages, sum->error,
		 sum->kind == POLL_SWEEP ? "; the sweep is retried at the next interval" : "");
	char when[24];
	snprintf(when, sizeof(when), "%lld", (long long)wall_ms());
	const char *pairs[] = {"poll_err_ms", when, "poll_error", sum->error, NULL};
	heartbeat(s, 0, false, pairs);
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg);

static void arm_poll_timer(struct service *s)
{
	struct timeval tv = {s->settings->poll_interval_s, 0};
	event_del(s->poll_timer);
	event_add(s->poll_timer, &tv);
}

/* ---- becoming active ---- */

static void decide(struct service *s);

static void on_heartbeat_read(void *arg, const redisReply *reply)
{
	struct svc_req q;
	struct service *s = req_take(arg, &q);
	if (!s || s->state != SVC_DECIDING)
		return;
	if (!reply || reply->type != REDIS_REPLY_ARRAY) {
		if (reply)
			log_warn("reading %s failed: %.200s", RKEYS_HEARTBEAT,
				 reply->type == REDIS_REPLY_ERROR ? reply->str : "not a hash");
		return; /* the poll timer or the next connect decides again */
	}
	long long poll_ok = 0, sweep_ok = 0;
	bool has_counters = false, is_layout_current = false;
	for (size_t i = 0; i + 1 < reply->elements; i += 2) {
		const redisReply *k = reply->element[i], *v = reply->element[i + 1];
		if (k->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "poll_ok_ms") == 0)
			(void)aredis_reply_ll(v, &poll_ok);
		else if (strcmp(k->str, "sweep_ok_ms") == 0)
			(void)aredis_reply_ll(v, &sweep_ok);
		else if (strcmp(k->str, "samples") == 0 || strcmp(k->str, "restored_ms") == 0)
			has_counters = true;
		else if (strcmp(k->str, "layout") == 0)
			is_layout_current = v->type == REDIS_REPLY_STRING &&
					    strcmp(v->str, RKEYS_LIVE_LAYOUT) == 0;
	}
	if (sweep_ok > 0 && !is_layout_current) {
		/* the station keys are of an older layout (rkeys.h), which this
		 * instance does not read: written again in full, as if empty */
		log_info("Redis holds station keys of an older layout: rewriting them as layout "
			 "%s",
			 RKEYS_LIVE_LAYOUT);
		sweep_ok = 0;
	}
	/* no sample ever counted and no restore done in this Redis: its
	 * counters (if any) are lost; the snapshot's come back first */
	s->restore_wanted = !has_counters && s->settings->restore_ingestd[0] != '\0';
	if (s->restore_wanted)
		s->restore_failures = 0;
	s->state = SVC_ACTIVE;
	s->need_sweep = false;
	bool reapply = false, redis_back = s->redis_back;
	s->redis_back = false;
	if (sweep_ok <= 0) {
		if (s->has_full_table) {
			reapply = true;
			table_mark_all_dirty(s->table);
			log_warn(
				"Redis holds no sweep (restarted empty?): re-applying %zu chargers "
				"from memory",
				table_count(s->table));
		} else {
			s->need_sweep = true;
			log_info("Redis holds no sweep: bootstrapping from a full sweep");
		}
	} else if (redis_back && s->has_full_table) {
		/* Redis may have restarted from an older snapshot: what was written
		 * after it is gone, and polls never repeat a status the table already
		 * holds. Only statuses newer than Redis's are written. */
		reapply = true;
		table_mark_all_dirty(s->table);
		log_info("Redis connection back: re-applying %zu chargers from memory (only newer "
			 "statuses are written)",
			 table_count(s->table));
	}
	if ((int64_t)poll_ok > s->covered_ms)
		s->covered_ms = poll_ok;
	s->swept_ms = sweep_ok;
	int64_t now = wall_ms();
	if (!s->need_sweep && now - s->covered_ms > window_ms(s)) {
		s->need_sweep = true;
		if (s->covered_ms > 0)
			log_info("last complete poll %lld s ago, beyond the %d-minute status "
				 "window: "
				 "sweeping",
				 (long long)((now - s->covered_ms) / 1000),
				 s->settings->status_period_min);
	}
	if (reapply) {
		/* the table seeds Redis again; its heartbeat then lets sampling begin */
		s->pending_cover_ms = s->covered_ms > 0 ? s->covered_ms : now;
		s->pending_is_sweep = !s->need_sweep && sweep_ok <= 0;
		s->pending_sweep_started_ms = 0;
		apply_barrier(s->apply, on_pass_written, s);
	} else if (!s->need_sweep) {
		s->seeded = true;
	}
	if (s->restore_wanted)
		start_restore(s);
	start_sampling(s);
	notify_status(s, "active: %s", s->need_sweep ? "sweeping" : "polling");
	apply_kick(s->apply);
	start_pass(s);
}

static void decide(struct service *s)
{
	if (!lease_is_held(s->lease) || !aredis_is_ready(s->redis))
		return;
	s->state = SVC_DECIDING;
	struct svc_req *q = req_new(s);
	const char *argv[] = {"HGETALL", RKEYS_HEARTBEAT};
	if (!q || !aredis_sendv(s->redis, on_heartbeat_read, q, 2, argv))
		free(q);
}

static void on_lease_gained(void *ctx)
{
	struct service *s = ctx;
	s->generation++;
	s->sampling = false;
	s->seeded = false;
	metric_set(s->m.lease_held, 1);
	if (s->state == SVC_DRAINING || s->state == SVC_STOPPED)
		return;
	decide(s);
}

static void on_lease_lost(void *ctx, const char *why)
{
	struct service *s = ctx;
	s->generation++;
	s->sampling = false;
	s->seeded = false;
	s->pending_cover_ms = 0;
	metric_set(s->m.lease_held, 0);
	poller_cancel(s->poller);
	congest_deactivate(s->congest);
	prune_cancel(s->prune);
	if (s->state != SVC_DRAINING && s->state != SVC_STOPPED) {
		s->state = SVC_STANDBY;
		notify_status(s, "standby: %s", why);
	}
}

static void on_redis_ready(void *ctx)
{
	struct service *s = ctx;
	metric_set(s->m.redis_up, 1);
	s->redis_back = true;
	lease_redis_ready(s->lease);
	/* still active across a short outage: Redis may have come back empty */
	if (lease_is_held(s->lease) && (s->state == SVC_ACTIVE || s->state == SVC_DECIDING)) {
		s->generation++;
		s->sampling = false;
		s->seeded = false;
		congest_deactivate(s->congest);
		prune_cancel(s->prune);
		decide(s);
	}
	apply_kick(s->apply);
}

static void on_redis_down(void *ctx, const char *why)
{
	struct service *s = ctx;
	metric_set(s->m.redis_up, 0);
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
	struct service *s = arg;
	if (s->state == SVC_DECIDING) {
		decide(s);
	} else if (s->state == SVC_ACTIVE) {
		start_pass(s);
		start_sampling(s); /* a failed restore is retried */
	}
}

/* ---- draining ---- */

static void stop_loop(struct service *s)
{
	s->state = SVC_STOPPED;
	event_base_loopexit(s->base, NULL);
}

static void on_released(void *ctx)
{
	stop_loop(ctx);
}

static void finish_drain(struct service *s, const char *how)
{
	if (s->state != SVC_DRAINING)
		return;
	event_del(s->drain_check);
	event_del(s->drain_timer);
	log_info("stopping: %s; %zu chargers still unwritten", how, table_dirty_count(s->table));
	congest_deactivate(s->congest);
	lease_release(s->lease, on_released, s);
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct service *s = arg;
	if (!lease_is_held(s->lease) || !aredis_is_ready(s->redis))
		finish_drain(s, "nothing can be written (no lease or no Redis)");
	else if (apply_is_idle(s->apply) && !congest_is_busy(s->congest))
		finish_drain(s, "every batch written");
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct service *s = arg;
	finish_drain(s, "the drain time ran out");
}

static void on_sigterm(evutil_socket_t fd, short what, void *arg)
{
	struct service *s = arg;
	if (s->state == SVC_DRAINING || s->state == SVC_STOPPED) {
		log_warn("second signal %d: exiting now", (int)fd);
		stop_loop(s);
		return;
	}
	log_info("signal %d: draining (at most %d s), then releasing the lease", (int)fd,
		 s->settings->drain_s);
	sd_notify(0, "STOPPING=1");
	s->state = SVC_DRAINING;
	event_del(s->poll_timer);
	poller_cancel(s->poller);
	prune_cancel(s->prune);
	apply_kick(s->apply);
	struct timeval limit = {s->settings->drain_s, 0};
	event_add(s->drain_timer, &limit);
	struct timeval step = {0, 50000};
	event_add(s->drain_check, &step);
}

/* ---- reload ---- */

static size_t field_size(enum cfg_type type)
{
	switch (type) {
	case CFG_INT:
	case CFG_ENUM: return sizeof(int);
	case CFG_DOUBLE: return sizeof(double);
	case CFG_BOOL: return sizeof(bool);
	case CFG_STR: return sizeof(char *);
	case CFG_LIST: return sizeof(struct cfg_list);
	}
	abort();
}

static bool field_equal(const struct cfg_key *k, const void *a, const void *b)
{
	const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
	if (k->type == CFG_STR) {
		const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
		return strcmp(sa ? sa : "", sb ? sb : "") == 0;
	}
	if (k->type == CFG_LIST) {
		const struct cfg_list *la = (const void *)pa, *lb = (const void *)pb;
		if (la->count != lb->count)
			return false;
		for (size_t i = 0; i < la->count; i++)
			if (strcmp(la->items[i], lb->items[i]) != 0)
				return false;
		return true;
	}
	return memcmp(pa, pb, field_size(k->type)) == 0;
}

/* Keep the running value of every restart-only key in fresh (swapping
 * owned pointers, so cfg_free of the old struct frees fresh's values). */
static void keep_restart_keys(const struct cfg_schema *schema, void *old, void *fresh)
{
	for (size_t t = 0; t < schema->ntables; t++) {
		const struct cfg_table *table = schema->tables[t];
		for (size_t i = 0; i < table->count; i++) {
			const struct cfg_key *k = &table->keys[i];
			if ((k->flags & CFG_RELOAD) || field_equal(k, old, fresh))
				continue;
			log_warn("reload: %s changed; it takes effect at the next restart",
				 k->name);
			char tmp[sizeof(struct cfg_list)];
			size_t n = field_size(k->type);
			memcpy(tmp, (char *)old + k->offset, n);
			memcpy((char *)old + k->offset, (char *)fresh + k->offset, n);
			memcpy((char *)fresh + k->offset, tmp, n);
		}
	}
}

static void on_sighup(evutil_socket_t fd, short what, void *arg)
{
	struct service *s = arg;
	struct realtimed_settings *fresh = calloc(1, sizeof(*fresh));
	char err[512];
	if (!fresh) {
		log_error("reload: out of memory; keeping the running configuration");
		return;
	}
	if (!cfg_load(s->schema, fresh, s->config_file, environ, err, sizeof(err)) ||
	    !service_check_settings(fresh, err, sizeof(err))) {
		log_error("reload: %s; keeping the running configuration", err);
		cfg_free(s->schema, fresh);
		free(fresh);
		return;
	}
	struct realtimed_settings *old = s->settings;
	keep_restart_keys(s->schema, old, fresh);
	if (!poller_set_keys(s->poller, &fresh->common.upstream_keys)) {
		log_error(
			"reload: UPSTREAM_KEYS: cannot be used; keeping the running configuration");
		keep_restart_keys(s->schema, fresh, old); /* swap back what was swapped */
		cfg_free(s->schema, fresh);
		free(fresh);
		return;
	}
	s->settings = fresh;
	settings_apply_logging(s->schema, fresh);
	congest_set_interval(s->congest, fresh->sample_interval_s);
	if (fresh->poll_interval_s != old->poll_interval_s && s->state != SVC_DRAINING)
		arm_poll_timer(s);
	cfg_free(s->schema, old);
	free(old);
	/* logs go to stderr (the journal): nothing to reopen */
	log_info("configuration reloaded (poll every %d s, status window %d min, samples every %d "
		 "s)",
		 fresh->poll_interval_s, fresh->status_period_min, fresh->sample_interval_s);
}

/* ---- watchdog, health, metrics ---- */

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}

static int health(void *ctx, struct buf *body)
{
	struct service *s = ctx;
	bool redis_up = aredis_is_ready(s->redis);
	int64_t now = wall_ms();
	long long poll_age = s->covered_ms > 0 ? (long long)((now - s->covered_ms) / 1000) : -1;
	/* an active instance is stale when three polls in a row have not completed */
	long long stale_after = 3LL * s->settings->poll_interval_s + 30;
	const char *reason = NULL;
	if (!redis_up)
		reason = "Redis is unreachable";
	else if (s->state == SVC_DECIDING)
		reason = "starting: reading the heartbeat";
	else if (s->state == SVC_ACTIVE && s->covered_ms == 0)
		reason = "starting: the first sweep or poll is not written yet";
	else if (s->state == SVC_ACTIVE && poll_age > stale_after)
		reason = "stale: polls are failing";
	else if (s->state == SVC_DRAINING || s->state == SVC_STOPPED)
		reason = "stopping";
	buf_printf(body,
		   "{\"status\":\"%s\",\"role\":\"%s\",\"redis\":\"%s\",\"lease\":%s,"
		   "\"chargers\":%zu,\"unwritten\":%zu,\"poll_age_s\":%lld,\"samples_done\":%llu",
		   reason ? "unavailable" : "ok", state_names[s->state], redis_up ? "up" : "down",
		   lease_is_held(s->lease) ? "true" : "false", table_count(s->table),
		   table_dirty_count(s->table), poll_age,
		   (unsigned long long)congest_stats(s->congest)->ticks_done);
	if (reason)
		buf_printf(body, ",\"reason\":\"%s\"", reason);
	buf_puts(body, "}\n");
	return reason ? 503 : 200;
}

/* Counters keep their own totals in the modules: export the growth. */
static void sync_counter(struct service *s, int slot, struct metric *m, uint64_t value)
{
	if (value > s->m.last[slot])
		metric_add(m, (double)(value - s->m.last[slot]));
	s->m.last[slot] = value;
}

static bool metrics(void *ctx, struct buf *body)
{
	struct service *s = ctx;
	const struct apply_stats *as = apply_stats(s->apply);
	const struct congest_stats *cs = congest_stats(s->congest);
	sync_counter(s, 0, s->m.applied, as->applied);
	sync_counter(s, 1, s->m.stale, as->stale);
	sync_counter(s, 2, s->m.changes, as->changes);
	sync_counter(s, 3, s->m.batches, as->batches);
	sync_counter(s, 4, s->m.batches_failed, as->batches_failed);
	sync_counter(s, 5, s->m.redis_connects, aredis_connects(s->redis));
	sync_counter(s, 6, s->m.lease_acquired, lease_acquisitions(s->lease));
	sync_counter(s, 7, s->m.ticks_done, cs->ticks_done);
	sync_counter(s, 8, s->m.ticks_skipped, cs->ticks_skipped);
	sync_counter(s, 9, s->m.sample_counted, cs->chargers_counted);
	sync_counter(s, 10, s->m.sample_skipped, cs->chargers_skipped);
	sync_counter(s, 11, s->m.fetch_attempts, poller_attempts(s->poller));
	sync_counter(s, 12, s->m.fetch_retries, poller_retries(s->poller));
	sync_counter(s, 13, s->m.removed, apply_stats(s->apply)->removed);
	sync_counter(s, 14, s->m.prune_walks, prune_stats(s->prune)->walks_done);
	metric_set(s->m.chargers, (double)table_count(s->table));
	metric_set(s->m.dirty, (double)table_dirty_count(s->table));
	return metrics_write(s->m.reg, body);
}

static bool metrics_setup(struct svc_metrics *m)
{
	struct metrics *r = m->reg = metrics_new();
	if (!r)
		return false;
	m->polls = metrics_counter_family(r, "realtimed_passes_total",
					  "Upstream passes (status polls, sweeps) by outcome",
					  "kind,outcome");
	m->items = metrics_counter_family(r, "realtimed_items_total",
					  "Upstream items by pass kind, accepted or rejected",
					  "kind,result");
	m->applied = metrics_counter(r, "realtimed_statuses_applied_total",
				     "Statuses written to Redis (newer than the stored one)");
	m->stale = metrics_counter(r, "realtimed_statuses_stale_total",
				   "Statuses Redis refused as not newer than the stored one");
	m->changes = metrics_counter(r, "realtimed_changes_total", "Entries added to ev:changes");
	m->batches = metrics_counter(r, "realtimed_batches_total", "Apply batches acknowledged");
	m->removed = metrics_counter(r, "realtimed_chargers_removed_total",
				     "Chargers removed from Redis: absent from a complete sweep");
	m->prune_walks = metrics_counter(r, "realtimed_prune_walks_total",
					 "Prune walks over Redis completed (one after each complete sweep)");
	m->batches_failed = metrics_counter(r, "realtimed_batches_failed_total",
					    "Apply batches failed and queued again");
	m->chargers = metrics_gauge(r, "realtimed_chargers", "Chargers known to this instance");
	m->dirty = metrics_gauge(r, "realtimed_chargers_unwritten",
				 "Chargers whose newest status is not yet in Redis");
	m->redis_up =
		metrics_gauge(r, "realtimed_redis_up", "1 while the Redis connection is ready");
	m->redis_connects = metrics_counter(r, "realtimed_redis_connects_total",
					    "Redis connections made ready");
	m->lease_held = metrics_gauge(r, "realtimed_lease_held", "1 while this instance is active");
	m->lease_acquired = metrics_counter(r, "realtimed_lease_acquired_total", "Leases acquired");
	m->ticks_done =
		metrics_counter(r, "realtimed_samples_total", "Congestion samples finished");
	m->ticks_skipped = metrics_counter(r, "realtimed_samples_skipped_total",
					   "Congestion samples skipped or abandoned");
	m->sample_counted =
		metrics_counter(r, "realtimed_sample_chargers_total", "Charger samples counted");
	m->sample_skipped = metrics_counter(r, "realtimed_sample_duplicates_total",
					    "Charger samples found already counted in their tick");
	m->last_poll_ok =
		metrics_gauge(r, "realtimed_last_complete_poll_timestamp_seconds",
			      "Start of the last complete poll or sweep written to Redis");
	m->lag = metrics_gauge(r, "realtimed_lag_seconds",
			       "Seconds the newest known status trails the clock");
	m->sweep_seconds = metrics_gauge(r, "realtimed_sweep_seconds",
					 "Duration of the last complete sweep, start to written");
	m->sweep_items =
		metrics_gauge(r, "realtimed_sweep_items", "Items of the last complete sweep");
	m->fetch_attempts = metrics_counter(r, "realtimed_upstream_requests_total",
					    "Upstream page requests made, retries included");
	m->fetch_retries = metrics_counter(r, "realtimed_upstream_retries_total",
					   "Upstream page requests that were retries");
	return m->polls && m->items && m->applied && m->stale && m->changes && m->batches &&
	       m->batches_failed && m->removed && m->prune_walks && m->chargers && m->dirty && m->redis_up && m->redis_connects &&
	       m->lease_held && m->lease_acquired && m->ticks_done && m->ticks_skipped &&
	       m->sample_counted && m->sample_skipped && m->last_poll_ok && m->lag &&
	       m->sweep_seconds && m->sweep_items && m->fetch_attempts && m->fetch_retries;
}

/* ---- life ---- */

struct service *service_new(const struct cfg_schema *schema, const char *config_file,
			    struct realtimed_settings *settings, char *err, size_t errlen)
{
	struct service *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		cfg_free(schema, settings);
		free(settings);
		return NULL;
	}
	s->schema = schema;
	s->config_file = config_file;
	s->settings = settings;
	const struct realtimed_settings *cfg = settings;
	char why[128];
	if (!rtclock_parse(cfg->clock, &s->clock, why, sizeof(why))) {
		snprintf(err, errlen, "REALTIMED_CLOCK: %s", why);
		goto fail;
	}
	if (!(s->base = event_base_new()) || !metrics_setup(&s->m)) {
		snprintf(err, errlen, "cannot set up the event loop");
		goto fail;
	}
	const struct aredis_opts ro = {
		.url = cfg->common.redis_url,
		.connect_timeout_ms = cfg->redis_timeout_ms,
		.io_timeout_ms = cfg->redis_timeout_ms,
		.backoff_first_ms = 100,
		.backoff_max_ms = 5000,
	};
	const struct aredis_events re = {on_redis_ready, on_redis_down};
	if (!(s->redis = aredis_new(s->base, &ro, &re, s, err, errlen)))
		goto fail;
	const struct lease_events le = {on_lease_gained, on_lease_lost};
	const struct apply_opts ao = {cfg->batch_size, cfg->pipeline, cfg->token_log};
	const struct poll_opts po = {
		.base_url = cfg->common.upstream_url,
		.page_size = cfg->page_size,
		.concurrency = cfg->concurrency,
		.max_attempts = cfg->retries + 1,
		.backoff_first_ms = cfg->backoff_ms,
		.backoff_max_ms = cfg->backoff_max_ms,
		.connect_timeout_ms = cfg->connect_timeout_ms,
		.page_timeout_s = cfg->page_timeout_s,
		.key_call_limit = cfg->key_call_limit,
	};
	const struct poll_events pe = {on_item, on_pass_done};
	if (!(s->table = table_new()) ||
	    !(s->lease = lease_new(s->base, s->redis, cfg->lease_ms, &le, s)) ||
	    !(s->apply = apply_new(s->base, s->redis, s->lease, s->table, &ao)) ||
	    !(s->congest = congest_new(s->base, s->redis, s->lease, &s->clock,
				       cfg->sample_interval_s)) ||
	    !(s->poller = poller_new(s->base, &po, &pe, s)) ||
	    !(s->restore = restore_new(s->base, on_restore_done, s)) ||
	    !(s->prune = prune_new(s->redis, s->lease, s->table)) ||
	    (s->heartbeat_script = aredis_script(s->redis, heartbeat_lua)) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!poller_set_keys(s->poller, &cfg->common.upstream_keys)) {
		snprintf(err, errlen, "UPSTREAM_KEYS: no service key configured");
		goto fail;
	}
	const struct admin_ops ops = {health, metrics};
	if (!(s->admin = admin_new(s->base, cfg->admin_port, cfg->port_file, &ops, s, err, errlen)))
		goto fail;
	s->sigterm = evsignal_new(s->base, SIGTERM, on_sigterm, s);
	s->sigint = evsignal_new(s->base, SIGINT, on_sigterm, s);
	s->sighup = evsignal_new(s->base, SIGHUP, on_sighup, s);
	s->poll_timer = event_new(s->base, -1, EV_PERSIST, on_poll_timer, s);
	s->drain_timer = evtimer_new(s->base, on_drain_timeout, s);
	s->drain_check = event_new(s->base, -1, EV_PERSIST, on_drain_check, s);
	s->watchdog = event_new(s->base, -1, EV_PERSIST, on_watchdog, s);
	if (!s->sigterm || !s->sigint || !s->sighup || !s->poll_timer || !s->drain_timer ||
	    !s->drain_check || !s->watchdog || event_add(s->sigterm, NULL) != 0 ||
	    event_add(s->sigint, NULL) != 0 || event_add(s->sighup, NULL) != 0) {
		snprintf(err, errlen, "cannot set up the event loop");
		goto fail;
	}
	return s;
fail:
	service_free(s);
	return NULL;
}

int service_run(struct service *s)
{
	signal(SIGPIPE, SIG_IGN);
	arm_poll_timer(s);
	uint64_t watchdog_us = 0;
	if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0) {
		struct timeval tv = {(time_t)(watchdog_us / 2 / 1000000),
				     (suseconds_t)(watchdog_us / 2 % 1000000)};
		event_add(s->watchdog, &tv);
	}
	aredis_start(s->redis);
	log_info("started: admin on 127.0.0.1:%d, Redis %s, poll every %d s (window %d min), "
		 "samples every %d s, lease %d ms",
		 admin_port(s->admin), aredis_describe(s->redis), s->settings->poll_interval_s,
		 s->settings->status_period_min, s->settings->sample_interval_s,
		 s->settings->lease_ms);
	sd_notify(0, "READY=1\nSTATUS=standby: waiting for Redis and the lease");
	event_base_dispatch(s->base);
	log_info("stopped");
	return s->exit_code;
}

void service_free(struct service *s)
{
	if (!s)
		return;
	struct event *events[] = {s->sigterm,	  s->sigint,	  s->sighup,  s->poll_timer,
				  s->drain_timer, s->drain_check, s->watchdog};
	for (size_t i = 0; i < ARRAY_LEN(events); i++)
		if (events[i])
			event_free(events[i]);
	admin_free(s->admin);
	restore_free(s->restore);
	poller_free(s->poller);
	/* the connection first: its pending callbacks still reach the others */
	aredis_free(s->redis);
	congest_free(s->congest);
	prune_free(s->prune);
	apply_free(s->apply);
	lease_free(s->lease);
	table_free(s->table);
	metrics_free(s->m.reg);
	if (s->base)
		event_base_free(s->base);
	if (s->settings) {
		cfg_free(s->schema, s->settings);
		free(s->settings);
	}
	free(s);
}
