#include "run.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The family's job names as a text[] literal for `job = ANY($1)`: the names
 * are fixed identifiers of this program ("chargers", "congestion_restore"),
 * never input, so they need no quoting. */
static void jobs_param(const struct run_family *family, char *buf, size_t len)
{
	size_t used = (size_t)snprintf(buf, len, "{");
	for (size_t i = 0; i < family->njobs && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "",
					 family->jobs[i]);
	if (used < len)
		snprintf(buf + used, len - used, "}");
}

static const char sql_holder[] =
	"SELECT id, to_char(started_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), host, coalesce(pid, 0), "
	"job FROM ingest_run WHERE job = ANY($1::text[]) AND status = 'running' "
	"ORDER BY id DESC LIMIT 1";

enum run_lock run_lock(PGconn *conn, const struct run_family *family, char *holder,
		       size_t holder_len, struct pgx_err *err)
{
	bool acquired = false;
	if (!pgx_lock_try(conn, family->lock_key, &acquired, err))
		return RUN_ERROR;
	if (acquired)
		return RUN_LOCKED;
	int backend = 0;
	if (!pgx_lock_holder(conn, family->lock_key, &backend, err))
		return RUN_ERROR;
	char jobs[256];
	jobs_param(family, jobs, sizeof(jobs));
	const char *params[] = {jobs};
	PGresult *res = pgx_exec(conn, sql_holder, 1, params, err);
	if (!res)
		return RUN_ERROR;
	if (PQntuples(res) == 1)
		snprintf(holder, holder_len, "%s run %s (pid %s on %s, started %s, backend %d)",
			 PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 3),
			 *PQgetvalue(res, 0, 2) ? PQgetvalue(res, 0, 2) : "?", PQgetvalue(res, 0, 1),
			 backend);
	else
		snprintf(holder, holder_len, "a dry run or a run starting up (backend %d)", backend);
	PQclear(res);
	return RUN_BUSY;
}

static const char sql_reap[] =
	"UPDATE ingest_run SET status = 'failed', finished_at = clock_timestamp(), "
	"error = 'abandoned: the process ended before finishing (killed or crashed); '"
	"|| 'marked by the next run' "
	"WHERE job = ANY($1::text[]) AND status = 'running'";

bool run_reap(PGconn *conn, const struct run_family *family, long long *reaped,
	      struct pgx_err *err)
{
	char jobs[256];
	jobs_param(family, jobs, sizeof(jobs));
	const char *params[] = {jobs};
	*reaped = 0;
	return pgx_cmd(conn, sql_reap, 1, params, reaped, err);
}

static const char sql_start[] =
	"INSERT INTO ingest_run (job, host, pid) VALUES ($1, $2, $3) RETURNING id";

bool run_start(PGconn *conn, const char *job, long long *run_id, struct pgx_err *err)
{
	char host[256] = "", pid[24];
	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	const char *params[] = {job, host, pid};
	int64_t id = 0;
	if (!pgx_query_int64(conn, sql_start, 3, params, &id, err))
		return false;
	*run_id = id;
	return true;
}

bool run_dry_id(PGconn *conn, long long *run_id, struct pgx_err *err)
{
	int64_t id = 0;
	if (!pgx_query_int64(conn, "SELECT nextval('ingest_run_id_seq')", 0, NULL, &id, err))
		return false;
	*run_id = id;
	return true;
}

static const char sql_finish[] =
	"UPDATE ingest_run SET status = $2, finished_at = clock_timestamp(), error = $3, "
	"pages = $4, records = $5, inserted = $6, unchanged = $7, rejected = $8, repaired = $9, "
	"bytes = $10 WHERE id = $1 AND status = 'running'";

bool run_finish(PGconn *conn, long long run_id, const char *status, const char *error,
		const struct run_counts *c, struct pgx_err *err)
{
	char id[24], pages[24], records[24], inserted[24], unchanged[24], rejected[24],
		repaired[24], bytes[24];
	snprintf(id, sizeof(id), "%lld", run_id);
	snprintf(pages, sizeof(pages), "%ld", c->pages);
	snprintf(records, sizeof(records), "%lld", c->records);
	snprintf(inserted, sizeof(inserted), "%lld", c->inserted);
	snprintf(unchanged, sizeof(unchanged), "%lld", c->unchanged);
	snprintf(rejected, sizeof(rejected), "%lld", c->rejected);
	snprintf(repaired, sizeof(repaired), "%lld", c->repaired);
	snprintf(bytes, sizeof(bytes), "%lld", c->bytes);
	const char *params[] = {id,	   status,   error,    pages,	 records,
				inserted, unchanged, rejected, repaired, bytes};
	long long changed = 0;
	if (!pgx_cmd(conn, sql_finish, 10, params, &changed, err))
		return false;
	if (changed != 1) {
		if (err) {
			err->sqlstate[0] = '\0';
			snprintf(err->msg, sizeof(err->msg), "run row %s is no longer 'running'",
				 id);
		}
		return false;
	}
	return true;
}
