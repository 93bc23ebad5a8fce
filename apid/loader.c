#include "loader.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "feed.h"
#include "log.h"
#include "pgbin.h"
#include "pgx.h"

/* Backoff between connection attempts: from 0.5 s doubling to 10 s. */
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS   10000
/* The loader thread's nice value. Under full HTTP load a build competes
 * with W workers, wrk-like clients and PostgreSQL for the cores; at nice 0
 * it gets one share in W + 3 or so and a 500,000-charger build stretches
 * past 5 s. At -5 (CFS weight 3121 against 1024) it gets about three
 * shares: it finishes sooner, and the workers keep the rest of the
 * machine (one build thread can take at most one core). Lowering nice
 * needs CAP_SYS_NICE or RLIMIT_NICE (systemd: LimitNICE=-5); without
 * either the loader stays at 0 and says so once. */
#define LOADER_NICE (-5)
/* A repeated failure is logged again after this long. */
#define REPEAT_LOG_MS 60000

/* One REPEATABLE READ snapshot for the whole build: stations and chargers
 * from the same committed state (on a replica too: no half-replayed load). */
static const char sql_begin[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/* The newest finished master-data load; its id changes when a load lands. */
static const char sql_last_run[] = "SELECT coalesce(max(id), 0) FROM ingest_run "
				   "WHERE job = '" LOADER_JOB "' AND status IN ('ok', 'partial')";

/* Plain scans in any order, as binary COPY (pgbin.h says why): the builder
 * sorts (cheaper than the server's sort of whole rows). Numbers travel as
 * their bytes: lat and lng are doubles, output_kw (numeric(8,2), never
 * negative) goes as an integer in hundredths, date_part is a double where
 * extract() would be numeric arithmetic per row. Stations that lost every
 * charger are dropped by the builder. */
#define STATION_FIELDS 16
static const char sql_stations[] =
	"COPY (SELECT stat_id, name, addr, location, use_time, lat, lng, busi_id, bnm, busi_nm, "
	"busi_call, zcode, parking_free, limit_yn, limit_detail, note "
	"FROM station WHERE deleted_at IS NULL) TO STDOUT (FORMAT binary)";

#define CHARGER_FIELDS 7
static const char sql_chargers[] =
	"COPY (SELECT stat_id, chger_id, chger_type, (output_kw * 100)::integer, method, stat, "
	"date_part('epoch', stat_upd_dt)::bigint "
	"FROM charger WHERE deleted_at IS NULL) TO STDOUT (FORMAT binary)";

/* Finished master-data runs after $1 up to $2, newest first, at most $3:
 * the change feed's runs (feed.h), with when each finished (ms). */
static const char sql_feed_runs[] =
	"SELECT id, (extract(epoch FROM finished_at) * 1000)::bigint FROM ingest_run "
	"WHERE job = '" LOADER_JOB "' AND status IN ('ok', 'partial') AND id > $1 AND id <= $2 "
	"ORDER BY id DESC LIMIT $3";

/* The stations run $1 touched (the station row, or one of its chargers,
 * last inserted, changed or deleted by it: last_run_id), as a map client
 * sees them now: deleted when the station is, or has no live charger
 * (the read model leaves such stations out); added when it was created
 * during the run; else changed. At most $2 rows (more: a reload). A
 * station a later run touched again is that run's. */
static const char sql_feed_stations[] =
	"WITH touched AS (SELECT stat_id FROM station WHERE last_run_id = $1 "
	"UNION SELECT stat_id FROM charger WHERE last_run_id = $1) "
	"SELECT s.stat_id, CASE WHEN s.deleted_at IS NOT NULL OR NOT EXISTS "
	"(SELECT 1 FROM charger c WHERE c.stat_id = s.stat_id AND c.deleted_at IS NULL) "
	"THEN 'deleted' WHEN s.created_at >= r.started_at THEN 'added' ELSE 'changed' END "
	"FROM touched t JOIN station s USING (stat_id) JOIN ingest_run r ON r.id = $1 "
	"WHERE coalesce(s.last_run_id, 0) <= $1 "
	"ORDER BY s.stat_id LIMIT $2";

/* What the loader thread and the rest share. */
struct loader {
	struct loader_config cfg; /* strings borrowed from the caller */
	char *listen_sql;	  /* "LISTEN <quoted channel>", or NULL */
	loader_publish_fn publish;
	void *publish_arg;
	pthread_t thread;
	bool started;
	int wake_fd; /* eventfd: stop or rebuild request */
	atomic_bool stop;
	atomic_bool requested;
	atomic_bool connected;
	const struct meters *meters; /* borrowed */
	/* thread-only state */
	PGconn *conn;
	int64_t last_run_id; /* -1: not read yet */
	uint64_t builds;
	bool have_model;
	bool notified;
	int64_t retry_ms;
	char last_error[512];
	int64_t last_error_logged_ms;
};

/* Log a failure once per distinct text, or again after REPEAT_LOG_MS. */
static void failure(struct loader *l, const char *what, const char *why)
{
	char text[512];
	snprintf(text, sizeof(text), "%s: %s", what, why);
	int64_t now = monotonic_ms();
	if (strcmp(text, l->last_error) != 0 || now - l->last_error_logged_ms > REPEAT_LOG_MS) {
		log_warn("read model: %s", text);
		snprintf(l->last_error, sizeof(l->last_error), "%s", text);
		l->last_error_logged_ms = now;
	}
	metric_inc(l->meters->pg_errors);
}

/* ---- building ---- */

static bool bad_field(const char *table, const char *column, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s.%s: unexpected binary value", table, column);
	return false;
}

static bool station_row(void *arg, const struct pgbin_field *f, char *err, size_t errlen)
{
	struct snap_station_row row = {
		.stat_id = f[0].data,
		.name = f[1].data,
		.addr = f[2].data,
		.location = f[3].data,
		.use_time = f[4].data,
		.busi_id = f[7].data,
		.bnm = f[8].data,
		.busi_nm = f[9].data,
		.busi_call = f[10].data,
		.zcode = f[11].data,
		.parking_free = pgbin_bool(&f[12]),
		.limit_yn = pgbin_bool(&f[13]),
		.limit_detail = f[14].data,
		.note = f[15].data,
	};
	if (!pgbin_float8(&f[5], &row.lat) || !pgbin_float8(&f[6], &row.lng))
		return bad_field("station", "lat/lng", err, errlen);
	if (row.parking_free < -1 || row.limit_yn < -1)
		return bad_field("station", "parking_free/limit_yn", err, errlen);
	return snap_builder_station(arg, &row, err, errlen);
}

static bool charger_row(void *arg, const struct pgbin_field *f, char *err, size_t errlen)
{
	int64_t ckw = SNAP_KW_UNKNOWN, stat = MODEL_STATUS_UNKNOWN, upd = 0;
	if ((f[3].len >= 0 && !pgbin_int(&f[3], &ckw)) || (f[5].len >= 0 && !pgbin_int(&f[5], &stat)) ||
	    (f[6].len >= 0 && !pgbin_int(&f[6], &upd)))
		return bad_field("charger", "output_kw/stat/stat_upd_dt", err, errlen);
	struct snap_charger_row row = {
		.stat_id = f[0].data,
		.chger_id = f[1].data,
		.chger_type = f[2].data,
		.output_ckw = ckw < 0 || ckw > INT32_MAX ? SNAP_KW_UNKNOWN : (int32_t)ckw,
		.method = f[4].data,
		.stat = (int)stat,
		.stat_upd_unix = upd,
	};
	return snap_builder_charger(arg, &row, err, errlen);
}

static bool exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	struct pgx_err e;
	PGresult *res = pgx_exec(conn, sql, 0, NULL, &e);
	if (!res) {
		snprintf(err, errlen, "%s", e.msg);
		return false;
	}
	PQclear(res);
	return true;
}

static double seconds_between(struct timespec a, struct timespec b)
{
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static struct snap *build(PGconn *conn, int64_t *run_id, char *err, size_t errlen)
{
	struct timespec t0, t1, c0, c1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	struct snap_builder *b = snap_builder_new();
	struct snap *s = NULL;
	struct pgx_err e;
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!exec_ok(conn, sql_begin, err, errlen))
		goto fail;
	int64_t id = 0;
	if (!pgx_query_int64(conn, sql_last_run, 0, NULL, &id, &e)) {
		snprintf(err, errlen, "%s", e.msg);
		goto fail;
	}
	if (!pgbin_copy(conn, sql_stations, STATION_FIELDS, station_row, b, NULL, err, errlen))
		goto fail;
	struct timespec t_st, t_ch;
	clock_gettime(CLOCK_MONOTONIC, &t_st);
	if (!pgbin_copy(conn, sql_chargers, CHARGER_FIELDS, charger_row, b, NULL, err, errlen))
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t_ch);
	pgx_rollback(conn); /* read only: nothing to commit */
	s = snap_builder_finish(b, err, errlen);
	if (!s)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	log_debug("read model: CPU %.3f s; wall: stations %.3f s, chargers %.3f s, indexes %.3f s",
		  seconds_between(c0, c1), seconds_between(t0, t_st), seconds_between(t_st, t_ch),
		  seconds_between(t_ch, t1));
	s->build_seconds = seconds_between(t0, t1);
	s->build_cpu_seconds = seconds_between(c0, c1);
	s->built_at = time(NULL);
	s->run_id = id;
	if (run_id)
		*run_id = id;
	return s;
fail:
	pgx_rollback(conn);
	snap_builder_free(b);
	return NULL;
}

struct snap *loader_build(PGconn *conn, char *err, size_t errlen)
{
	return build(conn, NULL, err, errlen);
}

/* ---- the thread ---- */

static void drop_connection(struct loader *l)
{
	if (l->conn)
		PQfinish(l->conn);
	l->conn = NULL;
	atomic_store(&l->connected, false);
}

static bool connect_pg(struct loader *l)
{
	struct pgx_retry retry = {.max_attempts = 1, .max_total_ms = 10000, .connect_timeout_s = 5};
	struct pgx_err e;
	PGconn *conn = NULL;
	if (pgx_connect(l->cfg.conninfo, "apid", &retry, &conn, &e) != PGX_CONNECT_OK) {
		failure(l, "PostgreSQL unavailable", e.msg);
		return false;
	}
	l->conn = conn;
	if (l->listen_sql && !exec_ok(conn, l->listen_sql, e.msg, sizeof(e.msg))) {
		failure(l, "LISTEN failed", e.msg);
		drop_connection(l);
		return false;
	}
	atomic_store(&l->connected, true);
	l->retry_ms = RETRY_FIRST_MS;
	if (l->last_error[0])
		log_info("read model: PostgreSQL reachable again");
	l->last_error[0] = '\0';
	return true;
}

/* The notifications libpq already holds. Any query (the ingest_run check,
 * the change feed's) reads those that arrive with its answer into libpq's
 * queue, where a poll on the socket never sees them. */
static void take_queued_notifications(struct loader *l)
{
	PGnotify *n;
	while ((n = PQnotifies(l->conn)) != NULL) {
		if (strcmp(n->relname, l->cfg.notify_channel) == 0) {
			log_debug("read model: NOTIFY %s '%s'", n->relname, n->extra);
			l->notified = true;
		}
		PQfreemem(n);
	}
}

static void read_notifications(struct loader *l)
{
	if (!l->conn)
		return;
	if (!PQconsumeInput(l->conn)) {
		failure(l, "PostgreSQL connection lost", PQerrorMessage(l->conn));
		drop_connection(l);
		return;
	}
	take_queued_notifications(l);
}

/* Wait up to timeout_ms for a notification, a request or stop. */
static void wait_for_work(struct loader *l, int64_t timeout_ms)
{
	if (l->conn) {
		take_queued_notifications(l);
		if (l->notified)
			return;
	}
	struct pollfd fds[2] = {{.fd = l->wake_fd, .events = POLLIN}, {.fd = -1}};
	if (l->conn)
		fds[1] = (struct pollfd){.fd = PQsocket(l->conn), .events = POLLIN};
	int rc = poll(fds, l->conn ? 2 : 1, (int)timeout_ms);
	if (rc > 0 && (fds[0].revents & POLLIN)) {
		uint64_t v;
		if (read(l->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_debug("read model: wake read: %s", strerror(errno));
	}
	if (rc > 0 && l->conn && fds[1].revents)
		read_notifications(l);
}

static bool newer_run(struct loader *l, bool *newer)
{
	struct pgx_err e;
	int64_t id = 0;
	if (!pgx_query_int64(l->conn, sql_last_run, 0, NULL, &id, &e)) {
		failure(l, "checking ingest_run", e.msg);
		if (PQstatus(l->conn) != CONNECTION_OK)
			drop_connection(l);
		return false;
	}
	*newer = id != l->last_run_id;
	return true;
}

/* One run's stations into the feed. */
static bool feed_run(struct loader *l, int64_t run, int64_t finished_ms, int64_t floor_run)
{
	char run_text[24], limit[24];
	snprintf(run_text, sizeof(run_text), "%lld", (long long)run);
	snprintf(limit, sizeof(limit), "%d", FEED_RUN_MAX_ITEMS + 1);
	struct pgx_err e;
	PGresult *res =
		pgx_exec(l->conn, sql_feed_stations, 2, (const char *[]){run_text, limit}, &e);
	if (!res) {
		failure(l, "reading a run's changes", e.msg);
		return false;
	}
	int rows = PQntuples(res);
	bool reload = rows > FEED_RUN_MAX_ITEMS;
	struct feed_station_change *items = calloc((size_t)rows + 1, sizeof(*items));
	size_t n = 0;
	for (int i = 0; items && !reload && i < rows; i++) {
		const char *id = PQgetvalue(res, i, 0), *kind = PQgetvalue(res, i, 1);
		if (strlen(id) >= FEED_ID_MAX)
			continue; /* longer than any upstream id: not a map station */
		memcpy(items[n].stat_id, id, strlen(id) + 1);
		items[n].kind = kind[0] == 'a'	 ? FEED_STATION_ADDED
				: kind[0] == 'd' ? FEED_STATION_DELETED
						 : FEED_STATION_CHANGED;
		n++;
	}
	PQclear(res);
	bool ok = items && feed_add_run(l->cfg.feed, run, finished_ms, items, n, reload, floor_run);
	free(items);
	if (!ok)
		failure(l, "change feed", "out of memory");
	return ok;
}

/* The runs finished since the feed's last one (all of them up to
 * FEED_RUNS_KEPT at start), oldest first. */
static void feed_sync(struct loader *l, int64_t run_id)
{
	int64_t last = feed_last_run(l->cfg.feed);
	char after[24], upto[24], limit[24];
	snprintf(after, sizeof(after), "%lld", (long long)(last < 0 ? 0 : last));
	snprintf(upto, sizeof(upto), "%lld", (long long)run_id);
	snprintf(limit, sizeof(limit), "%d", FEED_RUNS_KEPT + 1);
	struct pgx_err e;
	PGresult *res =
		pgx_exec(l->conn, sql_feed_runs, 3, (const char *[]){after, upto, limit}, &e);
	if (!res) {
		failure(l, "reading runs for the change feed", e.msg);
		return;
	}
	int rows = PQntuples(res);
	/* one row more than kept: the oldest is the floor (not retained) */
	int64_t floor_run = 0;
	if (rows > FEED_RUNS_KEPT) {
		floor_run = atoll(PQgetvalue(res, FEED_RUNS_KEPT, 0));
		rows = FEED_RUNS_KEPT;
	} else if (last >= 0) {
		floor_run = last;
	}
	for (int i = rows - 1; i >= 0; i--)
		if (!feed_run(l, atoll(PQgetvalue(res, i, 0)), atoll(PQgetvalue(res, i, 1)),
			      floor_run))
			break;
	PQclear(res);
}

static void rebuild(struct loader *l)
{
	char err[512] = "";
	int64_t run_id = 0;
	struct snap *s = build(l->conn, &run_id, err, sizeof(err));
	read_notifications(l); /* the build may have buffered some */
	if (!s) {
		metric_inc(l->meters->builds_failed);
		failure(l, "build failed", err);
		if (l->conn && PQstatus(l->conn) != CONNECTION_OK)
			drop_connection(l);
		return;
	}
	l->last_run_id = run_id;
	l->have_model = true;
	s->version = ++l->builds;
	metric_inc(l->meters->builds_ok);
	metric_set(l->meters->build_seconds, s->build_seconds);
	log_info("read model: built from run %lld: %u stations, %u chargers in %.2f s "
		 "(builder CPU %.2f s)",
		 (long long)run_id, s->nstations, s->nchargers, s->build_seconds,
		 s->build_cpu_seconds);
	if (l->cfg.feed)
		feed_sync(l, run_id);
	l->publish(l->publish_arg, s);
}

static void *loader_main(void *arg)
{
	struct loader *l = arg;
	log_ctx_set("thread", "loader");
	/* per thread on Linux: a thread id names only this thread */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), LOADER_NICE) != 0)
		log_info("read model: builder stays at nice 0 (nice %d: %s); builds under full "
			 "load take longer",
			 LOADER_NICE, strerror(errno));
	while (!atomic_load(&l->stop)) {
		if (!l->conn && !connect_pg(l)) {
			wait_for_work(l, l->retry_ms);
			l->retry_ms =
				l->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : l->retry_ms * 2;
			continue;
		}
		bool want = !l->have_model || l->notified || atomic_exchange(&l->requested, false);
		l->notified = false;
		bool newer = false;
		if (!want && !newer_run(l, &newer))
			continue;
		if (want || newer)
			rebuild(l);
		if (atomic_load(&l->stop))
			break;
		if (!l->have_model) {
			wait_for_work(l, l->retry_ms);
			l->retry_ms =
				l->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : l->retry_ms * 2;
		} else if (!l->notified && !atomic_load(&l->requested)) {
			wait_for_work(l, (int64_t)l->cfg.poll_seconds * 1000);
		}
	}
	drop_connection(l);
	return NULL;
}

struct loader *loader_start(const struct loader_config *cfg, const struct meters *meters,
			    loader_publish_fn publish, void *arg)
{
	struct loader *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = *cfg;
	l->publish = publish;
	l->publish_arg = arg;
	l->last_run_id = -1;
	l->retry_ms = RETRY_FIRST_MS;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_fd < 0)
		goto fail;
	if (cfg->notify_channel && cfg->notify_channel[0]) {
		/* the channel is an identifier: quote it as one (no libpq
		 * connection yet, so by hand: double any '"') */
		size_t n = strlen(cfg->notify_channel);
		l->listen_sql = malloc(n * 2 + 16);
		if (!l->listen_sql)
			goto fail;
		char *w = l->listen_sql + sprintf(l->listen_sql, "LISTEN \"");
		for (const char *p = cfg->notify_channel; *p; p++) {
			if (*p == '"')
				*w++ = '"';
			*w++ = *p;
		}
		strcpy(w, "\"");
	}
	l->meters = meters;
	if (pthread_create(&l->thread, NULL, loader_main, l) != 0)
		goto fail;
	l->started = true;
	return l;
fail:
	loader_stop(l);
	return NULL;
}

void loader_stop(struct loader *l)
{
	if (!l)
		return;
	if (l->started) {
		atomic_store(&l->stop, true);
		uint64_t one = 1;
		if (write(l->wake_fd, &one, sizeof(one)) < 0)
			log_debug("read model: wake: %s", strerror(errno));
		pthread_join(l->thread, NULL);
	}
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	free(l->listen_sql);
	free(l);
}

void loader_request(struct loader *l)
{
	atomic_store(&l->requested, true);
	uint64_t one = 1;
	if (write(l->wake_fd, &one, sizeof(one)) < 0)
		log_debug("read model: wake: %s", strerror(errno));
}

bool loader_is_connected(const struct loader *l)
{
	return atomic_load(&l->connected);
}
