#include "cgstore.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Table names are built from the snapshot id (an integer this module got
 * from the database), never from input. */
#define HOURS_TABLE    CGSTORE_SCHEMA ".hours_%d"
#define CHARGERS_TABLE CGSTORE_SCHEMA ".chargers_%d"
#define SQL_MAX	       512

static void __attribute__((format(printf, 2, 3))) set_err(struct pgx_err *err, const char *fmt, ...)
{
	if (!err)
		return;
	err->sqlstate[0] = '\0';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* Run a statement built with snprintf from `fmt` and snapshot ids. */
static bool __attribute__((format(printf, 3, 4)))
cmdf(PGconn *conn, struct pgx_err *err, const char *fmt, ...)
{
	char sql[SQL_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(sql)) {
		set_err(err, "statement too long (%d bytes)", n);
		return false;
	}
	return pgx_cmd(conn, sql, 0, NULL, NULL, err);
}

static void text_of_int(char *out, size_t outlen, long long v)
{
	snprintf(out, outlen, "%lld", v);
}

/* ---- bookkeeping ---- */

static const char sql_is_migrated[] =
	"SELECT (to_regclass('public.congestion_snapshot') IS NOT NULL "
	"AND to_regnamespace('" CGSTORE_SCHEMA "') IS NOT NULL "
	"AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('public.congestion_history') "
	"AND attname = 'out_of_service' AND NOT attisdropped))::int";

bool cgstore_is_migrated(PGconn *conn, bool *is_migrated, struct pgx_err *err)
{
	int64_t v = 0;
	if (!pgx_query_int64(conn, sql_is_migrated, 0, NULL, &v, err))
		return false;
	*is_migrated = v == 1;
	return true;
}

static const char sql_fail_abandoned[] =
	"UPDATE congestion_snapshot SET outcome = 'failed', finished_at = clock_timestamp(), "
	"error = 'abandoned: the process ended before finishing (killed or crashed); "
	"marked by the next run' WHERE outcome = 'running'";

/* Partitions whose DETACH ... CONCURRENTLY was interrupted. */
static const char sql_pending_detach[] =
	"SELECT p.relname, c.relname FROM pg_inherits i "
	"JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
	"WHERE i.inhdetachpending AND c.relnamespace = '" CGSTORE_SCHEMA "'::regnamespace "
	"AND p.relname IN ('congestion_history', 'congestion_charger') "
	"AND p.relnamespace = 'public'::regnamespace";

/* Tables of the schema attached to nothing: a retention step cut short. A
 * loading run's tables are invisible here (not committed). */
static const char sql_orphans[] =
	"SELECT c.relname FROM pg_class c WHERE c.relnamespace = '" CGSTORE_SCHEMA
	"'::regnamespace "
	"AND c.relkind = 'r' AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid)";

/* Kept snapshots whose tables are both gone (one left: retention finishes
 * it). */
static const char sql_mark_dropped[] =
	"UPDATE congestion_snapshot SET dropped_at = now() WHERE outcome = 'ok' AND NOT is_current "
	"AND dropped_at IS NULL AND to_regclass(format('" CGSTORE_SCHEMA ".hours_%s', id)) IS NULL "
	"AND to_regclass(format('" CGSTORE_SCHEMA ".chargers_%s', id)) IS NULL";

/* Names come from the catalog query above, all in our schema. */
static bool identifier_ok(const char *name)
{
	if (!*name || strlen(name) > 63)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

bool cgstore_repair(PGconn *conn, struct cgstore_repair *out, struct pgx_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!pgx_cmd(conn, sql_fail_abandoned, 0, NULL, &out->snapshots_failed, err))
		return false;
	PGresult *res = pgx_exec(conn, sql_pending_detach, 0, NULL, err);
	if (!res)
		return false;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *parent = PQgetvalue(res, i, 0), *child = PQgetvalue(res, i, 1);
		if (!identifier_ok(parent) || !identifier_ok(child))
			continue;
		if (!cmdf(conn, err,
			  "ALTER TABLE public.%s DETACH PARTITION " CGSTORE_SCHEMA ".%s FINALIZE",
			  parent, child)) {
			PQclear(res);
			return false;
		}
		out->detaches_finished++;
	}
	PQclear(res);
	if (!(res = pgx_exec(conn, sql_orphans, 0, NULL, err)))
		return false;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *table = PQgetvalue(res, i, 0);
		if (!identifier_ok(table))
			continue;
		if (!cmdf(conn, err, "DROP TABLE IF EXISTS " CGSTORE_SCHEMA ".%s", table)) {
			PQclear(res);
			return false;
		}
		out->tables_dropped++;
	}
	PQclear(res);
	return pgx_cmd(conn, sql_mark_dropped, 0, NULL, NULL, err);
}

static const char sql_current[] =
	"SELECT id, chargers, rows, samples, "
	"to_char(taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	"FROM congestion_snapshot WHERE is_current";

bool cgstore_current(PGconn *conn, struct cgstore_snapshot *out, struct pgx_err *err)
{
	memset(out, 0, sizeof(*out));
	PGresult *res = pgx_exec(conn, sql_current, 0, NULL, err);
	if (!res)
		return false;
	if (PQntuples(res) == 1) {
		out->id = atoi(PQgetvalue(res, 0, 0));
		out->chargers = atoll(PQgetvalue(res, 0, 1));
		out->rows = atoll(PQgetvalue(res, 0, 2));
		out->samples = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
		snprintf(out->taken_at, sizeof(out->taken_at), "%s", PQgetvalue(res, 0, 4));
	}
	PQclear(res);
	return true;
}

static const char sql_open[] = "INSERT INTO congestion_snapshot (run_id) VALUES ($1) RETURNING id";

bool cgstore_open(PGconn *conn, long long run_id, int *snapshot_id, struct pgx_err *err)
{
	char run[24];
	text_of_int(run, sizeof(run), run_id);
	const char *params[] = {run};
	int64_t id = 0;
	if (!pgx_query_int64(conn, sql_open, 1, params, &id, err))
		return false;
	*snapshot_id = (int)id;
	return true;
}

static const char sql_fail[] = "UPDATE congestion_snapshot SET outcome = 'failed', finished_at = "
			       "clock_timestamp(), error = $2 "
			       "WHERE id = $1 AND outcome = 'running'";

bool cgstore_fail(PGconn *conn, int snapshot_id, const char *error, struct pgx_err *err)
{
	char id[24];
	text_of_int(id, sizeof(id), snapshot_id);
	const char *params[] = {id, error};
	return pgx_cmd(conn, sql_fail, 2, params, NULL, err);
}

/* ---- the load ---- */

/* The load in progress: the transaction is open from begin to commit or
 * abort. Owns copy. */
struct cgstore_load {
	PGconn *conn; /* borrowed */
	int snapshot_id;
	struct pgx_copy *copy; /* the hour rows' COPY; NULL once ended */
	long long rows;
};

/* The partitions carry the parents' constraints (ATTACH requires them) plus
 * their bound as a CHECK, so ATTACH need not scan 38M rows to prove it. The
 * snapshot id is the column default: the COPY does not send it per row. */
static const char sql_create_hours[] =
	"CREATE TABLE " HOURS_TABLE " (LIKE public.congestion_history INCLUDING CONSTRAINTS, "
	"CONSTRAINT hours_%d_bound CHECK (snapshot_id = %d))";
static const char sql_create_chargers[] =
	"CREATE TABLE " CHARGERS_TABLE " (LIKE public.congestion_charger INCLUDING CONSTRAINTS, "
	"CONSTRAINT chargers_%d_bound CHECK (snapshot_id = %d))";
static const char sql_default[] = "ALTER TABLE %s ALTER COLUMN snapshot_id SET DEFAULT %d";
/* FREEZE: the table is new in this transaction, so rows are written frozen
 * and all-visible: no later vacuum rewrites 38M rows' hint bits, and
 * index-only scans work at once. */
static const char sql_copy_hours[] =
	"COPY " HOURS_TABLE
	" (stat_id, chger_id, weekday, hour, samples, uses, out_of_service) FROM STDIN WITH "
	"(FREEZE)";

static void load_free(struct cgstore_load *load)
{
	if (!load)
		return;
	pgx_copy_abort(load->copy, "load abandoned");
	free(load);
}

void cgstore_load_abort(struct cgstore_load *load, const char *reason)
{
	if (!load)
		return;
	pgx_copy_abort(load->copy, reason);
	load->copy = NULL;
	(void)pgx_rollback(load->conn);
	load_free(load);
}

struct cgstore_load *cgstore_load_begin(PGconn *conn, int snapshot_id, struct pgx_err *err)
{
	struct cgstore_load *load = calloc(1, sizeof(*load));
	if (!load) {
		set_err(err, "out of memory");
		return NULL;
	}
	load->conn = conn;
	load->snapshot_id = snapshot_id;
	char hours[64], chargers[64], copy_sql[SQL_MAX];
	snprintf(hours, sizeof(hours), HOURS_TABLE, snapshot_id);
	snprintf(chargers, sizeof(chargers), CHARGERS_TABLE, snapshot_id);
	snprintf(copy_sql, sizeof(copy_sql), sql_copy_hours, snapshot_id);
	if (!pgx_begin(conn, err) ||
	    !cmdf(conn, err, sql_create_hours, snapshot_id, snapshot_id, snapshot_id) ||
	    !cmdf(conn, err, sql_create_chargers, snapshot_id, snapshot_id, snapshot_id) ||
	    !cmdf(conn, err, sql_default, hours, snapshot_id) ||
	    !cmdf(conn, err, sql_default, chargers, snapshot_id) ||
	    !(load->copy = pgx_copy_begin(conn, copy_sql, err))) {
		cgstore_load_abort(load, "setup failed");
		return NULL;
	}
	return load;
}

/* "0".."23" for weekday and hour: no formatting in the hot loop. */
static const char *const small_numbers[24] = {"0",  "1",  "2",	"3",  "4",  "5",  "6",	"7",
					      "8",  "9",  "10", "11", "12", "13", "14", "15",
					      "16", "17", "18", "19", "20", "21", "22", "23"};

bool cgstore_load_station(struct cgstore_load *load, const char *stat_id,
			  const struct cgvalue_charger *chargers, size_t n, struct pgx_err *err)
{
	struct pgx_copy *copy = load->copy;
	size_t stat_len = strlen(stat_id);
	for (int weekday = 0; weekday < 7; weekday++) {
		for (int hour = 0; hour < 24; hour++) {
			int slot = rkeys_congestion_slot(weekday, hour);
			for (size_t i = 0; i < n; i++) {
				const struct cgvalue *v = chargers[i].value;
				char samples[6], uses[6], down[6];
				size_t samples_len = cgvalue_u16_text(v->samples[slot], samples);
				size_t uses_len = cgvalue_u16_text(v->uses[slot], uses);
				size_t down_len = cgvalue_u16_text(v->out_of_service[slot], down);
				pgx_copy_field(copy, stat_id, stat_len);
				pgx_copy_str(copy, chargers[i].chger_id);
				pgx_copy_field(copy, small_numbers[weekday], weekday < 10 ? 1 : 2);
				pgx_copy_field(copy, small_numbers[hour], hour < 10 ? 1 : 2);
				pgx_copy_field(copy, samples, samples_len);
				pgx_copy_field(copy, uses, uses_len);
				pgx_copy_field(copy, down, down_len);
				if (!pgx_copy_end_row(copy, err))
					return false;
			}
		}
	}
	load->rows += (long long)(7 * 24) * (long long)n;
	return true;
}

long long cgstore_load_rows(const struct cgstore_load *load)
{
	return load->rows;
}

static const char sql_copy_chargers[] =
	"COPY " CHARGERS_TABLE " (stat_id, chger_id, last_sample) FROM STDIN WITH (FREEZE)";
static const char sql_copy_rejects[] = "COPY ingest_reject (run_id, page, position, stat_id, "
				       "chger_id, reason, detail, raw) FROM STDIN";

static bool copy_chargers(struct cgstore_load *load, cgstore_next_charger next, void *arg,
			  long long *count, struct pgx_err *err)
{
	char sql[SQL_MAX];
	snprintf(sql, sizeof(sql), sql_copy_chargers, load->snapshot_id);
	struct pgx_copy *copy = pgx_copy_begin(load->conn, sql, err);
	if (!copy)
		return false;
	const char *stat_id, *chger_id;
	uint32_t last_sample;
	while (next(arg, &stat_id, &chger_id, &last_sample)) {
		pgx_copy_str(copy, stat_id);
		pgx_copy_str(copy, chger_id);
		pgx_copy_int(copy, last_sample);
		if (!pgx_copy_end_row(copy, err)) {
			pgx_copy_abort(copy, "charger row failed");
			return false;
		}
	}
	return pgx_copy_end(copy, count, err);
}

static bool copy_rejects(struct cgstore_load *load, long long run_id, cgstore_next_reject next,
			 void *arg, struct pgx_err *err)
{
	struct cgstore_reject r;
	if (!next || !next(arg, &r))
		return true;
	struct pgx_copy *copy = pgx_copy_begin(load->conn, sql_copy_rejects, err);
	if (!copy)
		return false;
	do {
		pgx_copy_int(copy, run_id);
		pgx_copy_int(copy, 0);
		pgx_copy_int(copy, r.position);
		pgx_copy_str(copy, r.stat_id);
		pgx_copy_str(copy, r.chger_id);
		pgx_copy_str(copy, r.reason);
		pgx_copy_str(copy, r.detail ? r.detail : "");
		pgx_copy_str(copy, r.raw ? r.raw : "");
		if (!pgx_copy_end_row(copy, err)) {
			pgx_copy_abort(copy, "reject row failed");
			return false;
		}
	} while (next(arg, &r));
	return pgx_copy_end(copy, NULL, err);
}

/* Built after the COPY from sorted input; fillfactor 100: a snapshot is
 * never updated, so leaf pages need no room for inserts. */
static const char sql_pkey_hours[] =
	"ALTER TABLE " HOURS_TABLE " ADD CONSTRAINT hours_%d_pkey "
	"PRIMARY KEY (stat_id, weekday, hour, chger_id) WITH (fillfactor = 100)";
static const char sql_pkey_chargers[] =
	"ALTER TABLE " CHARGERS_TABLE " ADD CONSTRAINT chargers_%d_pkey "
	"PRIMARY KEY (stat_id, chger_id) WITH (fillfactor = 100)";
static const char sql_attach_hours[] =
	"ALTER TABLE public.congestion_history ATTACH PARTITION " HOURS_TABLE " FOR VALUES IN (%d)";
static const char sql_attach_chargers[] =
	"ALTER TABLE public.congestion_charger ATTACH PARTITION " CHARGERS_TABLE
	" FOR VALUES IN (%d)";

static const char sql_uncurrent[] =
	"UPDATE congestion_snapshot SET is_current = false WHERE is_current";
static const char sql_close_snapshot[] =
	"UPDATE congestion_snapshot SET outcome = 'ok', is_current = true, finished_at = "
	"clock_timestamp(), "
	"chargers = $2, rows = $3, rejected = $4, samples = $5, "
	"first_sample = to_timestamp(nullif($6::bigint, 0)), "
	"last_sample = to_timestamp(nullif($7::bigint, 0)), out_of_service = $8 "
	"WHERE id = $1 AND outcome = 'running'";

static bool close_rows(struct cgstore_load *load, const struct cgstore_summary *s,
		       struct pgx_err *err)
{
	char id[24], chargers[24], rows[24], rejected[24], samples[24], first[24], last[24],
		down[24];
	text_of_int(id, sizeof(id), load->snapshot_id);
	text_of_int(chargers, sizeof(chargers), s->chargers);
	text_of_int(rows, sizeof(rows), load->rows);
	text_of_int(rejected, sizeof(rejected), s->rejected);
	snprintf(samples, sizeof(samples), "%llu", (unsigned long long)s->samples);
	snprintf(down, sizeof(down), "%llu", (unsigned long long)s->out_of_service);
	text_of_int(first, sizeof(first), s->first_sample);
	text_of_int(last, sizeof(last), s->last_sample);
	const char *snap_params[] = {id, chargers, rows, rejected, samples, first, last, down};
	long long changed = 0;
	if (!pgx_cmd(load->conn, sql_uncurrent, 0, NULL, NULL, err) ||
	    !pgx_cmd(load->conn, sql_close_snapshot, 8, snap_params, &changed, err))
		return false;
	if (changed != 1) {
		set_err(err, "snapshot row %s is no longer 'running'", id);
		return false;
	}
	return true;
}

bool cgstore_load_finish(struct cgstore_load *load, const struct cgstore_summary *summary,
			 cgstore_next_charger next_charger, void *charger_arg,
			 cgstore_next_reject next_reject, void *reject_arg, long long *rows,
			 struct pgx_err *err)
{
	int id = load->snapshot_id;
	PGconn *conn = load->conn;
	struct pgx_copy *copy = load->copy;
	load->copy = NULL;
	long long copied = 0, charger_rows = 0;
	bool ok = pgx_copy_end(copy, &copied, err);
	if (ok && copied != load->rows) {
		set_err(err, "COPY count mismatch: %lld rows sent, %lld copied", load->rows,
			copied);
		ok = false;
	}
	ok = ok && copy_chargers(load, next_charger, charger_arg, &charger_rows, err) &&
	     copy_rejects(load, summary->run_id, next_reject, reject_arg, err);
	if (ok && charger_rows != summary->chargers) {
		set_err(err, "%lld charger rows for %lld chargers read", charger_rows,
			summary->chargers);
		ok = false;
	}
	ok = ok &&
	     cmdf(conn, err, "SET LOCAL maintenance_work_mem = '%dMB'", summary->sort_mem_mb) &&
	     cmdf(conn, err, sql_pkey_hours, id, id) &&
	     cmdf(conn, err, sql_pkey_chargers, id, id) &&
	     cmdf(conn, err, "ANALYZE " HOURS_TABLE ", " CHARGERS_TABLE, id, id) &&
	     cmdf(conn, err, "SET LOCAL lock_timeout = %d", summary->lock_timeout_ms) &&
	     cmdf(conn, err, sql_attach_hours, id, id) &&
	     cmdf(conn, err, sql_attach_chargers, id, id) && close_rows(load, summary, err);
	if (!ok) {
		(void)pgx_rollback(conn);
		load_free(load);
		return false;
	}
	if (rows)
		*rows = load->rows;
	load_free(load);
	return true;
}

/* ---- retention ---- */

static const char sql_expired[] =
	"SELECT id FROM congestion_snapshot WHERE outcome = 'ok' AND dropped_at IS NULL "
	"AND NOT is_current ORDER BY id DESC OFFSET $1";
static const char sql_dropped[] = "UPDATE congestion_snapshot SET dropped_at = now() WHERE id = $1";

/* Whether `table` (schema-qualified) is a partition of anything now. */
static const char sql_is_attached[] =
	"SELECT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = to_regclass($1))::int";

/* Detach `table` from `parent` if it is attached (a run cut short may have
 * done it already). */
static bool detach(PGconn *conn, const char *parent, const char *table, struct pgx_err *err)
{
	const char *params[] = {table};
	int64_t attached = 0;
	if (!pgx_query_int64(conn, sql_is_attached, 1, params, &attached, err))
		return false;
	return !attached ||
	       cmdf(conn, err, "ALTER TABLE public.%s DETACH PARTITION %s CONCURRENTLY", parent,
		    table);
}

bool cgstore_retain(PGconn *conn, int keep, int statement_timeout_ms, int *dropped,
		    struct pgx_err *err)
{
	*dropped = 0;
	char older[24];
	text_of_int(older, sizeof(older), keep > 1 ? keep - 1 : 0);
	const char *params[] = {older};
	PGresult *res = pgx_exec(conn, sql_expired, 1, params, err);
	if (!res)
		return false;
	bool ok = cmdf(conn, err, "SET statement_timeout = %d", statement_timeout_ms);
	for (int i = 0; ok && i < PQntuples(res); i++) {
		int id = atoi(PQgetvalue(res, i, 0));
		const char *id_params[] = {PQgetvalue(res, i, 0)};
		char hours[64], chargers[64];
		snprintf(hours, sizeof(hours), HOURS_TABLE, id);
		snprintf(chargers, sizeof(chargers), CHARGERS_TABLE, id);
		ok = detach(conn, "congestion_history", hours, err) &&
		     detach(conn, "congestion_charger", chargers, err) &&
		     cmdf(conn, err, "DROP TABLE IF EXISTS %s, %s", hours, chargers) &&
		     pgx_cmd(conn, sql_dropped, 1, id_params, NULL, err);
		if (ok)
			(*dropped)++;
	}
	PQclear(res);
	struct pgx_err ignored;
	if (!pgx_cmd(conn, "RESET statement_timeout", 0, NULL, NULL, ok ? err : &ignored))
		ok = false;
	return ok;
}

/* ---- the restore read ---- */

/* The result of a COPY TO that ended: its error, if any. */
static bool copy_out_result(PGconn *conn, struct pgx_err *err)
{
	bool ok = true;
	PGresult *res;
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && ok) {
			ok = false;
			if (err) {
				const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
				const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
				snprintf(err->sqlstate, sizeof(err->sqlstate), "%s",
					 state ? state : "");
				snprintf(err->msg, sizeof(err->msg), "COPY TO: %s",
					 msg ? msg : PQerrorMessage(conn));
			}
		}
		PQclear(res);
	}
	return ok;
}

/* Split a COPY text row (no trailing newline) into at most max fields, in
 * place, undoing the escapes COPY TO writes. Returns the field count. */
static int split_row(char *row, char **fields, int max)
{
	int n = 0;
	char *out = row;
	fields[n++] = out;
	for (char *p = row; *p; p++) {
		if (*p == '\t') {
			*out++ = '\0';
			if (n == max)
				return -1;
			fields[n++] = out;
		} else if (*p == '\\' && p[1]) {
			p++;
			switch (*p) {
			case 't': *out++ = '\t'; break;
			case 'n': *out++ = '\n'; break;
			case 'r': *out++ = '\r'; break;
			case 'b': *out++ = '\b'; break;
			case 'f': *out++ = '\f'; break;
			case 'v': *out++ = '\v'; break;
			default: *out++ = *p; break;
			}
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
	return n;
}

/* A snapshot's chargers, sorted as the database sorts them. */
struct charger_list {
	char *names; /* "statId\0chgerId\0" per charger */
	size_t names_len, names_cap;
	size_t *offsets;
	uint32_t *marks;
	size_t n, cap;
};

static void charger_list_free(struct charger_list *l)
{
	free(l->names);
	free(l->offsets);
	free(l->marks);
}

static bool charger_list_add(struct charger_list *l, const char *stat_id, const char *chger_id,
			     uint32_t mark)
{
	size_t a = strlen(stat_id) + 1, b = strlen(chger_id) + 1;
	if (l->names_len + a + b > l->names_cap) {
		size_t cap = l->names_cap ? l->names_cap * 2 : 65536;
		while (cap < l->names_len + a + b)
			cap *= 2;
		char *p = realloc(l->names, cap);
		if (!p)
			return false;
		l->names = p;
		l->names_cap = cap;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		size_t *o = realloc(l->offsets, cap * sizeof(*o));
		if (!o)
			return false;
		l->offsets = o;
		uint32_t *m = realloc(l->marks, cap * sizeof(*m));
		if (!m)
			return false;
		l->marks = m;
		l->cap = cap;
	}
	l->offsets[l->n] = l->names_len;
	l->marks[l->n] = mark;
	l->n++;
	memcpy(l->names + l->names_len, stat_id, a);
	memcpy(l->names + l->names_len + a, chger_id, b);
	l->names_len += a + b;
	return true;
}

static const char *list_stat(const struct charger_list *l, size_t i)
{
	return l->names + l->offsets[i];
}

static const char *list_chger(const struct charger_list *l, size_t i)
{
	const char *s = l->names + l->offsets[i];
	return s + strlen(s) + 1;
}

/* Read a COPY TO's rows into fn (row text, NUL-terminated, no newline). */
static bool copy_out(PGconn *conn, const char *sql, bool (*fn)(void *arg, char *row), void *arg,
		     struct pgx_err *err)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		if (err) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "");
			snprintf(err->msg, sizeof(err->msg), "COPY TO: %s", PQerrorMessage(conn));
		}
		PQclear(res);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
		return false;
	}
	PQclear(res);
	bool is_stopped = false;
	char *row;
	int len;
	while ((len = PQgetCopyData(conn, &row, 0)) > 0) {
		if (!is_stopped) {
			if (row[len - 1] == '\n')
				row[len - 1] = '\0';
			if (!fn(arg, row))
				is_stopped = true; /* drain the rest: the connection stays usable */
		}
		PQfreemem(row);
	}
	bool ok = copy_out_result(conn, err);
	if (len == -2 && ok) {
		set_err(err, "COPY TO: %s", PQerrorMessage(conn));
		ok = false;
	}
	return ok && !is_stopped;
}

static bool on_charger_row(void *arg, char *row)
{
	struct charger_list *l = arg;
	char *f[3];
	if (split_row(row, f, 3) != 3)
		return false;
	return charger_list_add(l, f[0], f[1], (uint32_t)strtoul(f[2], NULL, 10));
}

/* Reassembling one station from its hour rows. */
struct restore {
	const struct charger_list *list;
	size_t first, n;     /* the station's chargers: list[first, first + n) */
	size_t next;	     /* list index of the next station */
	long long rows_seen; /* of the current station */
	struct cgvalue *values;
	struct cgvalue_charger *chargers;
	size_t cap;
	cgstore_restore_fn fn;
	void *arg;
	struct cgstore_restore_result *result;
	char error[200];
	bool is_stopped;
};

static bool restore_flush(struct restore *r)
{
	if (r->n == 0)
		return true;
	if (r->rows_seen != (long long)r->n * RKEYS_CONGESTION_SLOTS) {
		snprintf(r->error, sizeof(r->error), "station %s: %lld hour rows for %zu chargers",
			 list_stat(r->list, r->first), r->rows_seen, r->n);
		return false;
	}
	for (size_t i = 0; i < r->n; i++) {
		r->values[i].last_sample = r->list->marks[r->first + i];
		r->chargers[i] =
			(struct cgvalue_charger){list_chger(r->list, r->first + i), &r->values[i]};
	}
	r->result->chargers += (long long)r->n;
	if (!r->fn(r->arg, list_stat(r->list, r->first), r->chargers, r->n)) {
		r->is_stopped = true;
		return false;
	}
	r->n = 0;
	return true;
}

/* Start the station of list[r->next]. */
static bool restore_start(struct restore *r, const char *stat_id)
{
	const struct charger_list *l = r->list;
	if (r->next >= l->n || strcmp(list_stat(l, r->next), stat_id) != 0) {
		snprintf(r->error, sizeof(r->error), "station %s has hour rows but no charger rows",
			 stat_id);
		return false;
	}
	r->first = r->next;
	r->n = 0;
	while (r->next < l->n && !strcmp(list_stat(l, r->next), stat_id)) {
		r->next++;
		r->n++;
	}
	if (r->n > r->cap) {
		size_t cap = r->n * 2;
		struct cgvalue *v = realloc(r->values, cap * sizeof(*v));
		if (!v)
			return false;
		r->values = v;
		struct cgvalue_charger *c = realloc(r->chargers, cap * sizeof(*c));
		if (!c)
			return false;
		r->chargers = c;
		r->cap = cap;
	}
	memset(r->values, 0, r->n * sizeof(*r->values));
	r->rows_seen = 0;
	return true;
}

static bool on_hour_row(void *arg, char *row)
{
	struct restore *r = arg;
	char *f[7];
	if (split_row(row, f, 7) != 7) {
		snprintf(r->error, sizeof(r->error), "a row with other than 7 fields");
		return false;
	}
	if (r->n == 0 || strcmp(f[0], list_stat(r->list, r->first)) != 0) {
		if (!restore_flush(r) || !restore_start(r, f[0]))
			return false;
	}
	/* Within (station, weekday, hour) rows come in chgerId order, the
	 * list's order: row k of the station is charger k mod n. */
	size_t i = (size_t)(r->rows_seen % (long long)r->n);
	long long want_slot = r->rows_seen / (long long)r->n;
	int weekday = atoi(f[2]), hour = atoi(f[3]);
	if (strcmp(f[1], list_chger(r->list, r->first + i)) != 0 || weekday < 0 || weekday > 6 ||
	    hour < 0 || hour > 23 || rkeys_congestion_slot(weekday, hour) != want_slot) {
		snprintf(r->error, sizeof(r->error), "station %s: unexpected row for charger %s",
			 f[0], f[1]);
		return false;
	}
	int slot = rkeys_congestion_slot(weekday, hour);
	r->values[i].samples[slot] = (uint16_t)atoi(f[4]);
	r->values[i].uses[slot] = (uint16_t)atoi(f[5]);
	r->values[i].out_of_service[slot] = (uint16_t)atoi(f[6]);
	r->rows_seen++;
	r->result->rows++;
	return true;
}

static const char sql_restore_snapshot[] =
	"SELECT id, to_char(taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	"FROM congestion_snapshot WHERE outcome = 'ok' AND dropped_at IS NULL "
	"AND CASE WHEN $1::int = 0 THEN is_current ELSE id = $1::int END";

bool cgstore_restore_read(PGconn *conn, int snapshot_id, cgstore_restore_fn fn, void *arg,
			  struct cgstore_restore_result *result, struct pgx_err *err)
{
	memset(result, 0, sizeof(*result));
	/* One snapshot of the database for both reads; retention waits for us
	 * (DETACH CONCURRENTLY waits for transactions that may use a partition). */
	if (!pgx_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL, err))
		return false;
	char want[24];
	text_of_int(want, sizeof(want), snapshot_id);
	const char *params[] = {want};
	PGresult *res = pgx_exec(conn, sql_restore_snapshot, 1, params, err);
	if (!res) {
		(void)pgx_rollback(conn);
		return false;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return pgx_commit(conn, err);
	}
	int id = atoi(PQgetvalue(res, 0, 0));
	snprintf(result->taken_at, sizeof(result->taken_at), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);

	struct charger_list list = {0};
	struct restore r = {.list = &list, .fn = fn, .arg = arg, .result = result};
	struct pgx_err e = {{0}, {0}};
	char sql[SQL_MAX];
	snprintf(sql, sizeof(sql),
		 "COPY (SELECT stat_id, chger_id, last_sample FROM " CHARGERS_TABLE
		 " ORDER BY stat_id, chger_id) TO STDOUT",
		 id);
	bool ok = copy_out(conn, sql, on_charger_row, &list, &e);
	if (!ok && !e.msg[0])
		set_err(&e, "out of memory or a malformed charger row");
	/* The primary key's order, which the heap was loaded in: the planner
	 * reads the index in order (no sort of 38M rows); enable_sort off
	 * keeps it from choosing a sort should its estimates say otherwise. */
	snprintf(sql, sizeof(sql),
		 "COPY (SELECT stat_id, chger_id, weekday, hour, samples, uses, out_of_service FROM "
		 HOURS_TABLE
		 " ORDER BY stat_id, weekday, hour, chger_id) TO STDOUT",
		 id);
	ok = ok && pgx_cmd(conn, "SET LOCAL enable_sort = off", 0, NULL, NULL, &e);
	if (ok) {
		ok = copy_out(conn, sql, on_hour_row, &r, &e) && restore_flush(&r);
		if (ok && r.next != list.n) {
			snprintf(r.error, sizeof(r.error), "%zu chargers have no hour rows",
				 list.n - r.next);
			ok = false;
		}
		if (!ok && !r.is_stopped && r.error[0])
			set_err(&e, "snapshot inconsistent: %s", r.error);
		else if (!ok && !r.is_stopped && !e.msg[0])
			set_err(&e, "out of memory");
	}
	result->snapshot_id = id;
	result->is_stopped = r.is_stopped;
	free(r.values);
	free(r.chargers);
	charger_list_free(&list);
	if (!ok && !r.is_stopped) {
		(void)pgx_rollback(conn);
		if (err)
			*err = e;
		return false;
	}
	return pgx_commit(conn, err);
}
