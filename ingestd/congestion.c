#include "congestion.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cgread.h"
#include "cgstore.h"
#include "log.h"
#include "pgx.h"
#include "rds.h"
#include "run.h"
#include "stopsig.h"

#define JOB_SNAPSHOT "congestion"
#define JOB_RESTORE  "congestion_restore"
/* A refused key or value keeps at most this much of its raw bytes (hex). */
#define REJECT_RAW_MAX 1024

/* ---- progress ----
 * On a terminal, a bar redrawn in place; otherwise a log line every
 * progress_seconds. */
struct progress {
	bool is_tty, is_drawn;
	int interval_s;
	double start, last;
	const char *what; /* "read" or "restored" */
	size_t total, done;
	long long rows;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_init(struct progress *p, const struct congestion_config *cfg, const char *what)
{
	*p = (struct progress){
		.is_tty = isatty(2) && !log_enabled(LOG_DEBUG),
		.interval_s = cfg->progress_seconds > 0 ? cfg->progress_seconds : 5,
		.start = now_s(),
		.what = what,
	};
	p->last = p->start;
}

static void progress_show(struct progress *p, bool is_final)
{
	double t = now_s(), elapsed = t - p->start;
	if (!is_final && t - p->last < (p->is_tty ? 0.5 : p->interval_s))
		return;
	p->last = t;
	double rate = elapsed > 0 ? (double)p->rows / elapsed : 0;
	double share = p->total ? (double)p->done / (double)p->total : 1;
	long eta = share > 0 && share < 1 ? (long)(elapsed / share - elapsed) : 0;
	if (p->is_tty) {
		char bar[21], line[200];
		for (int i = 0; i < 20; i++)
			bar[i] = i < (int)(share * 20) ? '#' : '.';
		bar[20] = '\0';
		int n = snprintf(
			line, sizeof(line),
			"\r[%s] chargers %zu/%zu %s  rows %lld  %.0f rows/s  ETA %ld:%02ld  %s",
			bar, p->done, p->total, p->what, p->rows, rate, eta / 60, eta % 60,
			is_final ? "\n" : "");
		/* the terminal bar is UI, not a log line: one write, no stdio buffer */
		if (n > 0 &&
		    write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) > 0)
			p->is_drawn = !is_final;
		return;
	}
	if (!is_final)
		log_info("progress: chargers %zu/%zu %s, rows %lld, %.0f rows/s, ETA %ld s",
			 p->done, p->total, p->what, p->rows, rate, eta);
}

/* A bar on screen ends before a log line is written. */
static void progress_break(struct progress *p)
{
	if (p->is_drawn && write(2, "\n", 1) == 1)
		p->is_drawn = false;
}

/* ---- the job ---- */

struct job {
	const struct congestion_config *cfg;
	const char *name;	   /* JOB_SNAPSHOT or JOB_RESTORE */
	PGconn *conn;		   /* owned */
	PGcancel *cancel;	   /* owned; armed (stopsig_arm) while a statement runs */
	struct rds *redis;	   /* owned */
	struct cgread *reader;	   /* owned */
	struct cgstore_load *load; /* owned while the load transaction is open */
	FILE *rejects;		   /* owned: refused keys, spooled until the COPY */
	long long rejects_spooled;
	long long run_id; /* 0 until the row exists */
	int snapshot_id;  /* 0 until the row exists */
	struct cgstore_snapshot previous;
	struct progress progress;
	struct pgx_err err;
	char why[640];
	long long restored, kept; /* restore: counters written, existing ones left */
};

/* ---- the job lock and the ingest_run row (run.c) ----
 * Snapshot and restore share one lock: a restore must not write counters a
 * snapshot is reading. In the row, records: keys read (or restored);
 * inserted: hour rows (or counters written); unchanged: counters a restore
 * left as they were. */
static const char *const run_jobs[] = {JOB_SNAPSHOT, JOB_RESTORE};
static const struct run_family run_family = {
	.lock_key = PGX_LOCK_CONGESTION,
	.jobs = run_jobs,
	.njobs = 2,
};

static int db_code(const struct pgx_err *err)
{
	/* 3F000 invalid_schema_name, 42P01 undefined_table: not migrated */
	if (!strcmp(err->sqlstate, "3F000") || !strcmp(err->sqlstate, "42P01"))
		return CONGESTION_EXIT_CONFIG;
	return CONGESTION_EXIT_DATABASE;
}

/* The counts a run's row gets, so far. */
static struct run_counts counts_of(const struct job *job)
{
	struct run_counts c = {0};
	if (job->reader) {
		const struct cgread_stats *s = cgread_stats(job->reader);
		c.records = s->chargers + s->rejected + s->bad_keys;
		c.rejected = s->rejected + s->bad_keys;
		c.bytes = s->bytes;
	}
	c.inserted = job->cfg->is_restore ? job->restored : 0;
	c.unchanged = job->kept;
	return c;
}

/* The run failed: roll back, say so in its rows (if the connection still
 * works), log once. Returns code. */
static int fail_run(struct job *job, int code, const char *why)
{
	progress_break(&job->progress);
	if (stopsig_caught())
		code = 128 + stopsig_caught();
	char reason[700];
	if (stopsig_caught())
		snprintf(reason, sizeof(reason), "interrupted by %s", strsignal(stopsig_caught()));
	else
		snprintf(reason, sizeof(reason), "%s", why);
	log_error("%s run %lld failed: %s", job->name, job->run_id, reason);
	stopsig_arm(NULL);
	cgstore_load_abort(job->load, reason);
	job->load = NULL;
	if (!job->conn || PQstatus(job->conn) != CONNECTION_OK)
		return code;
	(void)pgx_rollback(job->conn);
	struct pgx_err err;
	if (job->snapshot_id && !cgstore_fail(job->conn, job->snapshot_id, reason, &err))
		log_error("could not mark snapshot %d failed: %s", job->snapshot_id, err.msg);
	struct run_counts counts = counts_of(job);
	counts.rejected = 0; /* rolled back: no ingest_reject rows */
	if (job->run_id && !run_finish(job->conn, job->run_id, "failed", reason, &counts, &err))
		log_error("could not mark run %lld failed: %s", job->run_id, err.msg);
	return code;
}

/* Connect, lock, check the schema, repair what dead runs left. -1 to go on. */
static int connect_and_lock(struct job *job)
{
	char safe_url[512];
	log_redact(job->cfg->database_url, safe_url, sizeof(safe_url));
	switch (pgx_connect(job->cfg->database_url, "ingestd congestion", NULL, &job->conn,
			    &job->err)) {
	case PGX_CONNECT_OK: break;
	case PGX_CONNECT_BAD_CONNINFO:
	case PGX_CONNECT_REFUSED:
		log_error("database %s: %s", safe_url, job->err.msg);
		return CONGESTION_EXIT_CONFIG;
	case PGX_CONNECT_UNAVAILABLE:
		log_error("database %s unavailable: %s", safe_url, job->err.msg);
		return CONGESTION_EXIT_DATABASE;
	}
	/* The backend notices a vanished client (kill -9) within a second, even
	 * in the middle of a long statement, rolls back and frees the lock. */
	if (!pgx_cmd(job->conn, "SET client_connection_check_interval = 1000", 0, NULL, NULL,
		     &job->err))
		log_warn("database: %s (an abandoned load may hold the lock longer)", job->err.msg);
	char holder[256] = "";
	switch (run_lock(job->conn, &run_family, holder, sizeof(holder), &job->err)) {
	case RUN_LOCKED: break;
	case RUN_BUSY:
		log_error("another congestion snapshot or restore is in progress: %s; not starting",
			  holder);
		return CONGESTION_EXIT_RUNNING;
	case RUN_ERROR:
		log_error("database: taking the job lock: %s", job->err.msg);
		return CONGESTION_EXIT_DATABASE;
	}
	bool is_migrated = false;
	if (!cgstore_is_migrated(job->conn, &is_migrated, &job->err)) {
		log_error("database: %s", job->err.msg);
		return CONGESTION_EXIT_DATABASE;
	}
	if (!is_migrated) {
		log_error("database: congestion_snapshot or congestion_history.out_of_service "
			  "missing: run `ingestd migrate` first");
		return CONGESTION_EXIT_CONFIG;
	}
	long long reaped = 0;
	struct cgstore_repair repair;
	if (!run_reap(job->conn, &run_family, &reaped, &job->err) ||
	    !cgstore_repair(job->conn, &repair, &job->err)) {
		log_error("database: cleaning up after abandoned runs: %s", job->err.msg);
		return db_code(&job->err);
	}
	if (reaped || repair.snapshots_failed)
		log_warn("marked %lld abandoned run(s) and %lld snapshot(s) failed", reaped,
			 repair.snapshots_failed);
	if (repair.detaches_finished || repair.tables_dropped)
		log_warn("finished retention cut short: %d detach(es) finalized, %d table(s) "
			 "dropped",
			 repair.detaches_finished, repair.tables_dropped);
	return -1;
}

static int connect_redis(struct job *job)
{
	char why[300];
	job->redis = rds_new(job->cfg->redis_url, job->cfg->redis_timeout_ms, why, sizeof(why));
	if (!job->redis) {
		log_error("%s", why);
		return CONGESTION_EXIT_REDIS;
	}
	return -1;
}

/* ---- the snapshot ---- */

static bool should_stop(void *arg)
{
	(void)arg;
	return stopsig_caught() != 0;
}

static void on_progress(void *arg, size_t keys_done)
{
	struct job *job = arg;
	job->progress.done = keys_done;
	job->progress.rows = job->load ? cgstore_load_rows(job->load) : 0;
	progress_show(&job->progress, false);
}

static bool on_station(void *arg, const char *stat_id, const struct cgvalue_charger *chargers,
		       size_t n)
{
	struct job *job = arg;
	return cgstore_load_station(job->load, stat_id, chargers, n, &job->err);
}

/* Refused keys wait in a temporary file (memory stays flat however many
 * there are) as NUL-separated fields: statId, chgerId, reason, detail, raw. */
static void on_reject(void *arg, const struct cgread_reject *r)
{
	struct job *job = arg;
	if (!job->rejects && !(job->rejects = tmpfile())) {
		log_warn("cannot spool a refused key (%s): %s", cgvalue_reject_name(r->reason),
			 strerror(errno));
		return;
	}
	char raw[2 * REJECT_RAW_MAX + 1];
	cgvalue_hex(r->raw, r->raw_len < REJECT_RAW_MAX ? r->raw_len : REJECT_RAW_MAX, raw);
	fprintf(job->rejects, "%s%c%s%c%s%c%s%c%s%c", r->stat_id ? r->stat_id : "", 0,
		r->chger_id ? r->chger_id : "", 0, cgvalue_reject_name(r->reason), 0, r->detail, 0,
		raw, 0);
	job->rejects_spooled++;
	if (job->rejects_spooled <= 10) {
		progress_break(&job->progress);
		log_warn("refused %s%s%s%s: %s: %s", RKEYS_CONGESTION_PREFIX,
			 r->stat_id ? r->stat_id : "", r->stat_id ? ":" : "?",
			 r->chger_id ? r->chger_id : "", cgvalue_reject_name(r->reason), r->detail);
	}
}

/* Reading the spool back for the COPY into ingest_reject. */
struct reject_reader {
	FILE *f;
	char *fields[5];
	size_t caps[5];
	long position;
};

static bool next_reject(void *arg, struct cgstore_reject *out)
{
	struct reject_reader *rr = arg;
	if (!rr->f)
		return false;
	for (int i = 0; i < 5; i++)
		if (getdelim(&rr->fields[i], &rr->caps[i], '\0', rr->f) <= 0)
			return false;
	*out = (struct cgstore_reject){
		.stat_id = rr->fields[0][0] ? rr->fields[0] : NULL,
		.chger_id = rr->fields[1][0] ? rr->fields[1] : NULL,
		.reason = rr->fields[2],
		.detail = rr->fields[3],
		.raw = rr->fields[4],
		.position = rr->position++,
	};
	return true;
}

struct charger_iter {
	const struct cgread *reader;
	size_t next;
};

static bool next_charger(void *arg, const char **stat_id, const char **chger_id,
			 uint32_t *last_sample)
{
	struct charger_iter *it = arg;
	while (it->next < cgread_keys(it->reader)) {
		if (cgread_loaded(it->reader, it->next++, stat_id, chger_id, last_sample))
			return true;
	}
	return false;
}

static int read_code(enum cgread_status st)
{
	switch (st) {
	case CGREAD_OK: return CONGESTION_EXIT_OK;
	case CGREAD_REDIS: return CONGESTION_EXIT_REDIS;
	case CGREAD_SINK: return CONGESTION_EXIT_DATABASE;
	case CGREAD_STOPPED: return CONGESTION_EXIT_SOFTWARE; /* fail_run makes it 128+signal */
	case CGREAD_NOMEM: return CONGESTION_EXIT_SOFTWARE;
	}
	return CONGESTION_EXIT_SOFTWARE;
}

/* Counters only grow: a snapshot with clearly fewer chargers or samples than
 * the current one read a Redis that was lost or reset. */
static bool has_shrunk(const struct job *job, long long chargers, uint64_t samples, char *why,
		       size_t whylen)
{
	const struct cgstore_snapshot *prev = &job->previous;
	double ratio = job->cfg->min_ratio;
	if (!prev->id || ratio <= 0 || job->cfg->is_forced)
		return false;
	if ((double)chargers < ratio * (double)prev->chargers) {
		snprintf(why, whylen,
			 "%lld chargers, under %.2f of the %lld of snapshot %d (taken %s): Redis "
			 "was "
			 "lost or reset? Restore with `ingestd congestion --restore`, or accept "
			 "with "
			 "--force",
			 chargers, ratio, prev->chargers, prev->id, prev->taken_at);
		return true;
	}
	if ((double)samples < ratio * (double)prev->samples) {
		snprintf(
			why, whylen,
			"%llu samples, under %.2f of the %llu of snapshot %d (taken %s): Redis was "
			"lost or reset? Restore with `ingestd congestion --restore`, or accept "
			"with "
			"--force",
			(unsigned long long)samples, ratio, (unsigned long long)prev->samples,
			prev->id, prev->taken_at);
		return true;
	}
	return false;
}

static int snapshot_run(struct job *job)
{
	const struct congestion_config *cfg = job->cfg;
	if (!cgstore_current(job->conn, &job->previous, &job->err) || !run_start(job->conn, job->name, &job->run_id, &job->err) ||
	    !cgstore_open(job->conn, job->run_id, &job->snapshot_id, &job->err))
		return fail_run(job, db_code(&job->err), job->err.msg);
	char id[24];
	snprintf(id, sizeof(id), "%lld", job->run_id);
	log_ctx_set("run", id);
	char safe_url[512];
	log_redact(cfg->redis_url, safe_url, sizeof(safe_url));
	log_info("congestion run %lld: snapshot %d of %s", job->run_id, job->snapshot_id, safe_url);

	double t0 = now_s();
	if (!(job->reader = cgread_new(job->redis, cfg->batch_keys)))
		return fail_run(job, CONGESTION_EXIT_SOFTWARE, "out of memory");
	const struct cgread_sink sink = {
		.arg = job,
		.station = on_station,
		.reject = on_reject,
		.should_stop = should_stop,
		.progress = on_progress,
	};
	enum cgread_status st = cgread_scan(job->reader, &sink, job->why, sizeof(job->why));
	if (st != CGREAD_OK)
		return fail_run(job, read_code(st), job->why);
	size_t keys = cgread_keys(job->reader);
	double t_scan = now_s() - t0;
	log_info("%zu congestion keys listed in %.1f s (%lld SCAN calls)", keys, t_scan,
		 cgread_stats(job->reader)->scan_calls);
	if (has_shrunk(job, (long long)keys, UINT64_MAX, job->why, sizeof(job->why)))
		return fail_run(job, CONGESTION_EXIT_SHRUNK, job->why);

	if (!(job->load = cgstore_load_begin(job->conn, job->snapshot_id, &job->err)))
		return fail_run(job, db_code(&job->err), job->err.msg);
	job->cancel = PQgetCancel(job->conn);
	stopsig_arm(job->cancel);
	progress_init(&job->progress, cfg, "read");
	job->progress.total = keys;
	st = cgread_read(job->reader, &sink, job->why, sizeof(job->why));
	if (st != CGREAD_OK)
		return fail_run(job, read_code(st), st == CGREAD_SINK ? job->err.msg : job->why);
	job->progress.rows = cgstore_load_rows(job->load);
	progress_show(&job->progress, true);
	double t_read = now_s() - t0;

	const struct cgread_stats *s = cgread_stats(job->reader);
	if (has_shrunk(job, s->chargers, s->samples, job->why, sizeof(job->why)))
		return fail_run(job, CONGESTION_EXIT_SHRUNK, job->why);
	const struct cgstore_summary summary = {
		.run_id = job->run_id,
		.chargers = s->chargers,
		.rejected = s->rejected + s->bad_keys,
		.samples = s->samples,
		.out_of_service = s->out_of_service,
		.first_sample = s->first_sample,
		.last_sample = s->last_sample,
		.sort_mem_mb = cfg->sort_mem_mb,
		.lock_timeout_ms = cfg->lock_timeout_ms,
	};
	struct charger_iter chargers = {job->reader, 0};
	struct reject_reader rejects = {.f = job->rejects};
	if (job->rejects && (fflush(job->rejects) != 0 || fseek(job->rejects, 0, SEEK_SET) != 0))
		return fail_run(job, CONGESTION_EXIT_SOFTWARE, "the reject spool failed");
	long long rows = 0;
	struct cgstore_load *load = job->load;
	job->load = NULL;
	bool ok = cgstore_load_finish(load, &summary, next_charger, &chargers, next_reject,
				      &rejects, &rows, &job->err);
	for (int i = 0; i < 5; i++)
		free(rejects.fields[i]);
	if (!ok)
		return fail_run(job, db_code(&job->err), job->err.msg);
	struct run_counts counts = counts_of(job);
	counts.inserted = rows;
	if (!run_finish(job->conn, job->run_id, "ok", NULL, &counts, &job->err) || !pgx_commit(job->conn, &job->err))
		return fail_run(job, db_code(&job->err), job->err.msg);
	double seconds = now_s() - t0;

	/* committed: a signal from here on only cuts retention short */
	int dropped = 0;
	if (!cgstore_retain(job->conn, cfg->keep, cfg->retention_timeout_ms, &dropped, &job->err))
		log_warn("retention: %s (the next run tries again)", job->err.msg);
	stopsig_arm(NULL);
	log_info("congestion run %lld ok: snapshot %d current: %lld chargers, %lld rows, %lld "
		 "refused, "
		 "%lld vanished, %llu samples (%llu out of service), %lld bytes; read %.1f s, total %.1f s, %.0f rows/s; "
		 "%d old snapshot(s) dropped (keep %d)",
		 job->run_id, job->snapshot_id, s->chargers, rows, s->rejected + s->bad_keys,
		 s->vanished, (unsigned long long)s->samples,
		 (unsigned long long)s->out_of_service, s->bytes, t_read, seconds,
		 seconds > 0 ? (double)rows / seconds : 0.0, dropped, cfg->keep);
	if (stopsig_caught()) {
		log_warn("interrupted by %s after snapshot %d was committed",
			 strsignal(stopsig_caught()), job->snapshot_id);
		return 128 + stopsig_caught();
	}
	return CONGESTION_EXIT_OK;
}

/* ---- the restore ---- */

struct restore_batch {
	struct job *job;
	long long set, kept;
};

static void on_set_reply(void *arg, size_t index, const redisReply *reply)
{
	(void)index;
	struct restore_batch *b = arg;
	if (reply->type == REDIS_REPLY_NIL)
		b->kept++; /* SET NX: the counter exists */
	else if (reply->type == REDIS_REPLY_STATUS)
		b->set++;
}

static bool restore_flush(struct job *job)
{
	struct restore_batch b = {job, 0, 0};
	enum rds_status st =
		rds_flush(job->redis, on_set_reply, &b, NULL, job->why, sizeof(job->why));
	job->restored += b.set;
	job->kept += b.kept;
	return st == RDS_OK;
}

static bool on_restore_station(void *arg, const char *stat_id,
			       const struct cgvalue_charger *chargers, size_t n)
{
	struct job *job = arg;
	if (stopsig_caught())
		return false;
	for (size_t i = 0; i < n; i++) {
		char key[RKEYS_KEY_MAX];
		unsigned char value[RKEYS_CONGESTION_VALUE_BYTES];
		int len = rkeys_congestion(key, sizeof(key), stat_id, chargers[i].chger_id);
		cgvalue_encode(chargers[i].value, value);
		const char *argv[] = {"SET", key, (const char *)value, "NX"};
		const size_t argvlen[] = {3, (size_t)len, sizeof(value), 2};
		if (len <= 0 || (size_t)len >= sizeof(key) ||
		    !rds_append(job->redis, job->cfg->is_replace ? 3 : 4, argv, argvlen)) {
			snprintf(job->why, sizeof(job->why), "redis: queueing SET %s failed", key);
			return false;
		}
	}
	job->progress.done += n;
	job->progress.rows += (long long)n * RKEYS_CONGESTION_SLOTS;
	if (rds_pending(job->redis) >= (size_t)job->cfg->batch_keys) {
		if (!restore_flush(job))
			return false;
		progress_show(&job->progress, false);
	}
	return true;
}

static const char sql_snapshot_chargers[] =
	"SELECT coalesce((SELECT chargers FROM congestion_snapshot WHERE outcome = 'ok' "
	"AND dropped_at IS NULL AND CASE WHEN $1::int = 0 THEN is_current ELSE id = $1::int END), "
	"0)";

static int restore_run(struct job *job)
{
	const struct congestion_config *cfg = job->cfg;
	if (!run_start(job->conn, job->name, &job->run_id, &job->err))
		return fail_run(job, db_code(&job->err), job->err.msg);
	char id[24];
	snprintf(id, sizeof(id), "%lld", job->run_id);
	log_ctx_set("run", id);
	char want[24];
	snprintf(want, sizeof(want), "%d", cfg->snapshot_id);
	const char *params[] = {want};
	int64_t total = 0;
	if (!pgx_query_int64(job->conn, sql_snapshot_chargers, 1, params, &total, &job->err))
		return fail_run(job, db_code(&job->err), job->err.msg);
	progress_init(&job->progress, cfg, "restored");
	job->progress.total = (size_t)total;
	job->cancel = PQgetCancel(job->conn);
	stopsig_arm(job->cancel);
	double t0 = now_s();
	struct cgstore_restore_result result;
	job->why[0] = '\0';
	if (!cgstore_restore_read(job->conn, cfg->snapshot_id, on_restore_station, job, &result,
				  &job->err))
		return fail_run(job, db_code(&job->err), job->err.msg);
	if (result.is_stopped)
		return fail_run(job, CONGESTION_EXIT_REDIS, job->why[0] ? job->why : "stopped");
	if (!result.snapshot_id) {
		char none[128];
		if (cfg->snapshot_id)
			snprintf(none, sizeof(none), "no kept snapshot %d to restore",
				 cfg->snapshot_id);
		else
			snprintf(none, sizeof(none), "no current snapshot to restore");
		return fail_run(job, CONGESTION_EXIT_NO_SNAPSHOT, none);
	}
	if (rds_pending(job->redis) && !restore_flush(job))
		return fail_run(job, CONGESTION_EXIT_REDIS, job->why);
	stopsig_arm(NULL);
	progress_show(&job->progress, true);
	double seconds = now_s() - t0;
	struct run_counts counts = {
		.records = result.chargers, .inserted = job->restored, .unchanged = job->kept};
	if (!run_finish(job->conn, job->run_id, "ok", NULL, &counts, &job->err))
		log_warn("database: closing run %lld: %s", job->run_id, job->err.msg);
	log_info("restore run %lld ok: snapshot %d (taken %s): %lld chargers (%lld rows), %lld "
		 "counters written, %lld existing kept%s; %.1f s",
		 job->run_id, result.snapshot_id, result.taken_at, result.chargers, result.rows,
		 job->restored, job->kept, cfg->is_replace ? "" : " (SET NX; --replace overwrites)",
		 seconds);
	return CONGESTION_EXIT_OK;
}

int congestion_main(const struct congestion_config *cfg)
{
	struct stopsig_saved signals;
	stopsig_install(&signals);
	struct job job = {.cfg = cfg, .name = cfg->is_restore ? JOB_RESTORE : JOB_SNAPSHOT};
	int code = connect_and_lock(&job);
	if (code < 0)
		code = connect_redis(&job);
	if (code < 0)
		code = cfg->is_restore ? restore_run(&job) : snapshot_run(&job);
	stopsig_arm(NULL);
	if (job.cancel)
		PQfreeCancel(job.cancel);
	cgstore_load_abort(job.load, "ending");
	cgread_free(job.reader);
	if (job.rejects)
		fclose(job.rejects);
	rds_free(job.redis);
	if (job.conn)
		PQfinish(job.conn); /* ends the session: the job lock goes with it */
	log_ctx_clear();
	stopsig_restore(&signals);
	return code;
}
