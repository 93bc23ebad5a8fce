#include "chargers.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "merge.h"
#include "pgx.h"
#include "pipeline.h"
#include "run.h"
#include "stage.h"
#include "upstream.h"

/* The job's lock and ingest_run rows: run.c. A run killed at any point
 * leaves its row 'running' and its staging tables; the next run marks the
 * row failed and drops the tables. merge.c writes a success. */
static const char *const run_jobs[] = {"chargers"};
static const struct run_family run_family = {
	.lock_key = PGX_LOCK_CHARGERS,
	.jobs = run_jobs,
	.njobs = 1,
};

/* ---- the job ---- */

static const char sql_schema_ready[] =
	"SELECT count(*) FROM pg_namespace WHERE nspname = '" STAGE_SCHEMA "'";

/* The backend notices a vanished client (kill -9) within a second even in
 * the middle of a long statement, rolls back and frees the job lock: the
 * next run need not wait for a merge nobody will commit. */
static const char sql_session[] = "SET client_connection_check_interval = 1000";

struct job {
	const struct chargers_config *cfg;
	PGconn *conn;            /* owned */
	struct upstream_keys *keys; /* owned */
	struct stage *stage;     /* owned until ended */
	long long run_id;        /* 0 until the row exists */
	bool has_row;            /* a real run row (not a dry run) */
	struct pipeline_result fetched;
	struct merge_result merged;
	struct pgx_err err;
};

static int exit_for_outcome(enum pipeline_outcome outcome, int signal_number)
{
	switch (outcome) {
	case PIPE_COMPLETE: return CHARGERS_EXIT_OK;
	case PIPE_PARTIAL: return CHARGERS_EXIT_PARTIAL;
	case PIPE_UNAVAILABLE: return CHARGERS_EXIT_UNAVAILABLE;
	case PIPE_CONFIG: return CHARGERS_EXIT_CONFIG;
	case PIPE_DATABASE: return CHARGERS_EXIT_DATABASE;
	case PIPE_INTERRUPTED: return 128 + signal_number;
	case PIPE_INTERNAL: return CHARGERS_EXIT_SOFTWARE;
	}
	return CHARGERS_EXIT_SOFTWARE;
}

/* The run failed: say so in its row (if the connection still works) and
 * drop its staging. Returns code. */
static int fail_run(struct job *job, int code, const char *why)
{
	log_error("chargers run %lld failed: %s", job->run_id, why);
	stage_abort(job->stage, why);
	job->stage = NULL;
	if (!job->conn || PQstatus(job->conn) != CONNECTION_OK)
		return code;
	(void)pgx_rollback(job->conn);
	struct pgx_err err;
	if (job->has_row) {
		const struct run_counts counts = {
			.pages = job->fetched.pages_ok,
			.records = job->fetched.records,
			.repaired = job->fetched.repaired,
			.bytes = job->fetched.bytes,
		};
		/* a failed run wrote no ingest_reject rows: rejected stays 0 */
		if (!run_finish(job->conn, job->run_id, "failed", why, &counts, &err))
			log_error("could not mark run %lld failed: %s", job->run_id, err.msg);
	}
	if (!stage_sweep(job->conn, 0, NULL, &err))
		log_warn("could not drop the staging tables: %s (the next run will)", err.msg);
	return code;
}

static int db_code(const struct pgx_err *err)
{
	/* 3F000 invalid_schema_name, 42P01 undefined_table: not migrated */
	if (!strcmp(err->sqlstate, "3F000") || !strcmp(err->sqlstate, "42P01"))
		return CHARGERS_EXIT_CONFIG;
	return CHARGERS_EXIT_DATABASE;
}

static int connect_and_lock(struct job *job)
{
	char safe_url[512];
	log_redact(job->cfg->database_url, safe_url, sizeof(safe_url));
	switch (pgx_connect(job->cfg->database_url, "ingestd chargers", NULL, &job->conn, &job->err)) {
	case PGX_CONNECT_OK:
		break;
	case PGX_CONNECT_BAD_CONNINFO:
	case PGX_CONNECT_REFUSED:
		log_error("database %s: %s", safe_url, job->err.msg);
		return CHARGERS_EXIT_CONFIG;
	case PGX_CONNECT_UNAVAILABLE:
		log_error("database %s unavailable: %s", safe_url, job->err.msg);
		return CHARGERS_EXIT_DATABASE;
	}
	if (!pgx_cmd(job->conn, sql_session, 0, NULL, NULL, &job->err))
		log_warn("database: %s (an abandoned merge may hold the lock longer)", job->err.msg);
	char holder[256] = "";
	switch (run_lock(job->conn, &run_family, holder, sizeof(holder), &job->err)) {
	case RUN_LOCKED:
		break;
	case RUN_BUSY:
		log_error("another chargers run is in progress: %s; not starting", holder);
		return CHARGERS_EXIT_RUNNING;
	case RUN_ERROR:
		log_error("database: taking the job lock: %s", job->err.msg);
		return CHARGERS_EXIT_DATABASE;
	}
	int64_t ready = 0;
	if (!pgx_query_int64(job->conn, sql_schema_ready, 0, NULL, &ready, &job->err)) {
		log_error("database: %s", job->err.msg);
		return CHARGERS_EXIT_DATABASE;
	}
	if (!ready) {
		log_error("database: schema " STAGE_SCHEMA " missing: run `ingestd migrate` first");
		return CHARGERS_EXIT_CONFIG;
	}
	long long reaped = 0;
	int dropped = 0;
	if (!run_reap(job->conn, &run_family, &reaped, &job->err) ||
	    !stage_sweep(job->conn, 0, &dropped, &job->err)) {
		log_error("database: cleaning up abandoned runs: %s", job->err.msg);
		return db_code(&job->err);
	}
	if (reaped)
		log_warn("marked %lld abandoned chargers run(s) failed and dropped their staging", reaped);
	return -1;
}

static int start_run(struct job *job)
{
	bool ok = job->cfg->dry_run ? run_dry_id(job->conn, &job->run_id, &job->err)
				    : run_start(job->conn, run_jobs[0], &job->run_id, &job->err);
	if (!ok) {
		log_error("database: starting the run: %s", job->err.msg);
		return db_code(&job->err);
	}
	job->has_row = !job->cfg->dry_run;
	char id[24];
	snprintf(id, sizeof(id), "%lld", job->run_id);
	log_ctx_set("run", id);
	if (!stage_create(job->conn, job->run_id, &job->err) ||
	    !(job->stage = stage_begin(job->conn, job->run_id, &job->err)))
		return fail_run(job, db_code(&job->err), job->err.msg);
	job->keys = upstream_keys_new(job->cfg->keys, job->cfg->nkeys, job->cfg->key_call_limit);
	if (!job->keys)
		return fail_run(job, CHARGERS_EXIT_SOFTWARE, "out of memory");
	char safe_url[512];
	log_redact(job->cfg->upstream_url, safe_url, sizeof(safe_url));
	log_info("chargers run %lld%s: fetching %s with %d connections, %d rows a page", job->run_id,
		 job->cfg->dry_run ? " (dry run)" : "", safe_url, job->cfg->concurrency,
		 job->cfg->page_size);
	return -1;
}

static void summary(const struct job *job, const char *status, double seconds)
{
	const struct pipeline_result *f = &job->fetched;
	const struct merge_result *m = &job->merged;
	log_info("chargers run %lld %s%s: pages %ld/%ld, records %lld (valid %lld, rejected %lld, "
		 "repaired %lld, duplicates %lld), chargers inserted %lld, updated %lld, unchanged "
		 "%lld, deleted %lld; stations inserted %lld, updated %lld, deleted %lld; "
		 "%lld bytes, %lld retries, %.1f s, %.0f records/s",
		 job->run_id, status, job->cfg->dry_run ? " (dry run: rolled back)" : "",
		 f->pages_ok, f->pages_total, f->records, f->valid, f->rejected, f->repaired,
		 f->valid - m->distinct_chargers, m->inserted, m->updated, m->unchanged, m->deleted,
		 m->stations_inserted, m->stations_updated, m->stations_deleted, f->bytes, f->retries,
		 seconds, seconds > 0 ? (double)f->records / seconds : 0.0);
}

static int fetch_and_merge(struct job *job)
{
	const struct chargers_config *cfg = job->cfg;
	const struct pipeline_opts po = {
		.base_url = cfg->upstream_url,
		.keys = job->keys,
		.stage = job->stage,
		.concurrency = cfg->concurrency,
		.page_size = cfg->page_size,
		.max_attempts = cfg->max_attempts,
		.backoff_first_ms = cfg->backoff_first_ms,
		.backoff_max_ms = cfg->backoff_max_ms,
		.connect_timeout_ms = cfg->connect_timeout_ms,
		.page_timeout_s = cfg->page_timeout_s,
		.low_speed_seconds = cfg->low_speed_seconds,
		.progress_seconds = cfg->progress_seconds,
		.progress_tty = isatty(2) && !log_enabled(LOG_DEBUG),
	};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!pipeline_run(&po, &job->fetched))
		return fail_run(job, CHARGERS_EXIT_SOFTWARE, job->fetched.error);
	const struct pipeline_result *f = &job->fetched;
	if (f->outcome != PIPE_COMPLETE && f->outcome != PIPE_PARTIAL)
		return fail_run(job, exit_for_outcome(f->outcome, f->signal),
				f->error[0] ? f->error : "fetch failed");

	long long rows = 0;
	struct stage *stage = job->stage;
	job->stage = NULL;
	if (!stage_end(stage, &rows, &job->err))
		return fail_run(job, db_code(&job->err), job->err.msg);

	char partial[640] = "";
	if (f->outcome == PIPE_PARTIAL)
		snprintf(partial, sizeof(partial), "%ld of %ld pages failed: %s", f->pages_failed,
			 f->pages_total, f->error);
	const struct merge_input in = {
		.run_id = job->run_id,
		.attempts = f->accepted,
		.nattempts = f->naccepted,
		.has_discarded_rows = (size_t)f->attempt_ids != f->naccepted,
		.rejects = f->rejected,
		.valid = f->valid,
		.is_complete = f->outcome == PIPE_COMPLETE,
		.min_ratio = cfg->delete_min_ratio,
		.channel = cfg->notify_channel,
		.dry_run = cfg->dry_run,
		.pages = f->pages_ok,
		.records = f->records,
		.bytes = f->bytes,
		.repaired = f->repaired,
		.partial_reason = partial[0] ? partial : NULL,
	};
	if (!merge_run(job->conn, &in, &job->merged, &job->err))
		return fail_run(job, db_code(&job->err), job->err.msg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	struct pgx_err err;
	if (!stage_sweep(job->conn, 0, NULL, &err))
		log_warn("could not drop the staging tables: %s (the next run will)", err.msg);
	if (job->merged.is_partial) {
		log_warn("chargers run %lld partial: nothing deleted: %s", job->run_id,
			 job->merged.partial_reason);
		summary(job, "partial", seconds);
		return CHARGERS_EXIT_PARTIAL;
	}
	summary(job, "ok", seconds);
	return CHARGERS_EXIT_OK;
}

int chargers_main(const struct chargers_config *cfg)
{
	if (cfg->nkeys == 0) {
		log_error("UPSTREAM_KEYS is empty: the API needs a service key");
		return CHARGERS_EXIT_CONFIG;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("libcurl failed to initialise");
		return CHARGERS_EXIT_SOFTWARE;
	}
	struct job job = {.cfg = cfg};
	int code = connect_and_lock(&job);
	if (code < 0)
		code = start_run(&job);
	if (code < 0)
		code = fetch_and_merge(&job);
	stage_abort(job.stage, "ending");
	pipeline_result_free(&job.fetched);
	upstream_keys_free(job.keys);
	if (job.conn)
		PQfinish(job.conn); /* ends the session: the job lock goes with it */
	log_ctx_clear();
	curl_global_cleanup();
	return code;
}
