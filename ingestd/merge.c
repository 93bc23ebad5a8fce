#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stage.h"

/* Statements with the run's staging tables in them: %1$s items, %2$s
 * chargers, %3$s stations (table names are built from the run id, a
 * number, never from input). */

/* Only the rows of accepted attempts count: the others go first. */
static const char sql_drop_failed[] = "DELETE FROM %1$s WHERE attempt <> ALL ($1::integer[])";

/* De-duplication; the rule is merge.h's. Keys compare bytewise (COLLATE
 * "C"): the order only has to group equal keys, and locale-aware comparison
 * would be most of the sort's time. */
static const char sql_dedup_chargers[] =
	"CREATE UNLOGGED TABLE %2$s AS "
	"SELECT DISTINCT ON (stat_id COLLATE \"C\", chger_id COLLATE \"C\") stat_id, chger_id, swapped, " STAGE_STATION_COLUMNS
	", station_hash, " STAGE_CHARGER_COLUMNS ", charger_hash "
	"FROM %1$s WHERE reason IS NULL "
	"ORDER BY stat_id COLLATE \"C\", chger_id COLLATE \"C\", stat_upd_dt DESC NULLS LAST, "
	"page DESC, pos DESC";

static const char sql_dedup_stations[] =
	"CREATE UNLOGGED TABLE %3$s AS "
	"SELECT DISTINCT ON (stat_id COLLATE \"C\") stat_id, " STAGE_STATION_COLUMNS ", station_hash "
	"FROM %2$s c ORDER BY stat_id COLLATE \"C\", chger_id COLLATE \"C\"";

/* Statistics on the join keys only: the planner needs the row counts and
 * key spread for its hash joins; the other columns would cost seconds. */
static const char sql_analyze[] = "ANALYZE %2$s (stat_id, chger_id), %3$s (stat_id)";
static const char sql_analyze_items[] = "ANALYZE %1$s (stat_id, chger_id), %3$s (stat_id)";

/* The usual pass has no duplicate: a unique index over the keys (a sort of
 * the two key columns alone) proves it, and the merge then reads the items
 * table itself instead of a sorted copy of every wide row. A duplicate
 * fails the index (23505) and the sorting de-duplication runs instead. */
static const char sql_unique_keys[] =
	"CREATE UNIQUE INDEX ON %1$s (stat_id COLLATE \"C\", chger_id COLLATE \"C\") "
	"WHERE reason IS NULL";

static const char sql_live_chargers[] = "SELECT count(*) FROM charger WHERE deleted_at IS NULL";

/* Changed rows, and rows back after a deletion; unchanged rows are not
 * touched (no new tuple, no WAL). */
static const char sql_update_stations[] =
	"UPDATE station t SET (" STAGE_STATION_COLUMNS ") = (%4$s), content_hash = s.station_hash, "
	"updated_at = now(), deleted_at = NULL, last_run_id = $1 "
	"FROM %3$s s WHERE t.stat_id = s.stat_id "
	"AND (t.content_hash <> s.station_hash OR t.deleted_at IS NOT NULL)";

static const char sql_insert_stations[] =
	"INSERT INTO station (stat_id, " STAGE_STATION_COLUMNS ", content_hash, last_run_id) "
	"SELECT s.stat_id, %4$s, s.station_hash, $1 FROM %3$s s "
	"WHERE NOT EXISTS (SELECT 1 FROM station t WHERE t.stat_id = s.stat_id)";

static const char sql_update_chargers[] =
	"UPDATE charger t SET (" STAGE_CHARGER_COLUMNS ") = (%4$s), content_hash = s.charger_hash, "
	"updated_at = now(), deleted_at = NULL, last_run_id = $1 "
	"FROM %2$s s WHERE t.stat_id = s.stat_id AND t.chger_id = s.chger_id "
	"AND (t.content_hash <> s.charger_hash OR t.deleted_at IS NOT NULL)";

static const char sql_insert_chargers[] =
	"INSERT INTO charger (stat_id, chger_id, " STAGE_CHARGER_COLUMNS ", content_hash, last_run_id) "
	"SELECT s.stat_id, s.chger_id, %4$s, s.charger_hash, $1 FROM %2$s s "
	"WHERE NOT EXISTS (SELECT 1 FROM charger t "
	"WHERE t.stat_id = s.stat_id AND t.chger_id = s.chger_id)";

static const char sql_delete_chargers[] =
	"UPDATE charger t SET deleted_at = now(), last_run_id = $1 "
	"WHERE t.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM %2$s s "
	"WHERE s.stat_id = t.stat_id AND s.chger_id = t.chger_id)";

static const char sql_delete_stations[] =
	"UPDATE station t SET deleted_at = now(), last_run_id = $1 "
	"WHERE t.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM %3$s s WHERE s.stat_id = t.stat_id)";

static const char sql_rejects[] =
	"INSERT INTO ingest_reject (run_id, page, position, stat_id, chger_id, reason, detail, raw) "
	"SELECT $1, page, pos, stat_id, chger_id, reason, detail, raw FROM %1$s "
	"WHERE reason IS NOT NULL ORDER BY page, pos";

static const char sql_finish_run[] =
	"UPDATE ingest_run SET status = $2, finished_at = now(), pages = $3, records = $4, "
	"inserted = $5, updated = $6, unchanged = $7, deleted = $8, repaired = $9, rejected = $10, "
	"bytes = $11, error = $12 WHERE id = $1";

/* station_live_search (0001) is a GIN index with fastupdate: new entries
 * go to its pending list, and the inserting backend merges that list into
 * the index whenever it passes gin_pending_list_limit (4 MB): on a big load
 * most of the merge's time. A bigger limit for this transaction leaves the
 * merging to autovacuum, after the commit, off the load's clock (apid never
 * queries this index: its search is in memory, apid/search.c). */
static const char sql_gin_pending[] = "SET LOCAL gin_pending_list_limit = '1GB'";

static const char sql_notify[] = "SELECT pg_notify($1, $2)";

/* "s.a, s.b, ..." from "a, b, ...". */
static void prefixed(struct buf *out, const char *columns)
{
	const char *p = columns;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ",");
		if (out->len)
			buf_puts(out, ", ");
		buf_puts(out, "s.");
		buf_append(out, p, n);
		p += n;
	}
}

struct names {
	char items[96], chargers[160], stations[96];
	struct buf station_values, charger_values; /* "s.name, s.addr, ..." */
};

/* Run one of the statements above, with the table names put in. */
static bool run(PGconn *conn, const struct names *nm, const char *fmt, bool charger_values,
		int nparams, const char *const *params, long long *rows, struct pgx_err *err)
{
	struct buf sql = BUF_INIT;
	const struct buf *values = charger_values ? &nm->charger_values : &nm->station_values;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	buf_printf(&sql, fmt, nm->items, nm->chargers, nm->stations, buf_cstr(values));
#pragma GCC diagnostic pop
	bool ok = buf_ok(&sql) && pgx_cmd(conn, buf_cstr(&sql), nparams, params, rows, err);
	buf_free(&sql);
	return ok;
}

static void fmt_ll(char *out, size_t len, long long v)
{
	snprintf(out, len, "%lld", v);
}

static bool attempts_array(struct buf *out, const int *attempts, size_t n)
{
	buf_putc(out, '{');
	for (size_t i = 0; i < n; i++)
		buf_printf(out, i ? ",%d" : "%d", attempts[i]);
	buf_putc(out, '}');
	return buf_ok(out);
}

static bool merge_body(PGconn *conn, struct names *nm, const struct merge_input *in,
		       struct merge_result *out, struct pgx_err *err)
{
	char run_id[24];
	fmt_ll(run_id, sizeof(run_id), in->run_id);
	const char *p_run[] = {run_id};

	if (in->has_discarded_rows) {
		struct buf attempts = BUF_INIT;
		bool ok = attempts_array(&attempts, in->attempts, in->nattempts);
		const char *p_attempts[] = {buf_cstr(&attempts)};
		ok = ok && run(conn, nm, sql_drop_failed, false, 1, p_attempts, NULL, err);
		buf_free(&attempts);
		if (!ok)
			return false;
	}

	/* a big sort and hash joins follow: let them stay in memory */
	if (!pgx_cmd(conn, "SET LOCAL work_mem = '256MB'", 0, NULL, NULL, err) ||
	    !pgx_cmd(conn, sql_gin_pending, 0, NULL, NULL, err) ||
	    !pgx_cmd(conn, "SAVEPOINT unique_keys", 0, NULL, NULL, err))
		return false;
	struct pgx_err dup;
	bool is_unique = run(conn, nm, sql_unique_keys, false, 0, NULL, NULL, &dup);
	if (!is_unique && strcmp(dup.sqlstate, "23505") != 0) {
		*err = dup;
		return false;
	}
	if (!pgx_cmd(conn, is_unique ? "RELEASE SAVEPOINT unique_keys"
				     : "ROLLBACK TO SAVEPOINT unique_keys",
		     0, NULL, NULL, err))
		return false;
	if (is_unique) {
		snprintf(nm->chargers, sizeof(nm->chargers), "(SELECT * FROM %s WHERE reason IS NULL)",
			 nm->items);
		out->distinct_chargers = in->valid;
	} else if (!run(conn, nm, sql_dedup_chargers, false, 0, NULL, &out->distinct_chargers,
			err)) {
		return false;
	}
	if (!run(conn, nm, sql_dedup_stations, false, 0, NULL, NULL, err) ||
	    !run(conn, nm, is_unique ? sql_analyze_items : sql_analyze, false, 0, NULL, NULL, err))
		return false;
	int64_t live = 0;
	if (!pgx_query_int64(conn, sql_live_chargers, 0, NULL, &live, err))
		return false;
	out->live_before = live;

	if (!run(conn, nm, sql_update_stations, false, 1, p_run, &out->stations_updated, err) ||
	    !run(conn, nm, sql_insert_stations, false, 1, p_run, &out->stations_inserted, err) ||
	    !run(conn, nm, sql_update_chargers, true, 1, p_run, &out->updated, err) ||
	    !run(conn, nm, sql_insert_chargers, true, 1, p_run, &out->inserted, err))
		return false;
	out->unchanged = out->distinct_chargers - out->inserted - out->updated;

	/* the deletion rule */
	if (!in->is_complete) {
		out->is_partial = true;
		snprintf(out->partial_reason, sizeof(out->partial_reason), "%s",
			 in->partial_reason ? in->partial_reason : "the pass was incomplete");
	} else if (out->distinct_chargers < in->valid) {
		/* an item listed twice means the listing moved while it was paged:
		 * another may have slipped between two pages (UPSTREAM.md) */
		out->is_partial = true;
		snprintf(out->partial_reason, sizeof(out->partial_reason),
			 "the listing moved while paged: %lld items listed twice, so others may "
			 "have been missed; nothing deleted",
			 in->valid - out->distinct_chargers);
	} else if ((double)out->distinct_chargers < in->min_ratio * (double)out->live_before) {
		out->is_partial = true;
		snprintf(out->partial_reason, sizeof(out->partial_reason),
			 "implausible total: %lld chargers loaded, below %.2f x %lld live before the run",
			 out->distinct_chargers, in->min_ratio, out->live_before);
	} else {
		if (!run(conn, nm, sql_delete_chargers, false, 1, p_run, &out->deleted, err) ||
		    !run(conn, nm, sql_delete_stations, false, 1, p_run, &out->stations_deleted, err))
			return false;
		out->deletes_applied = true;
	}
	if (in->rejects > 0 && !run(conn, nm, sql_rejects, false, 1, p_run, &out->rejected, err))
		return false;

	char pages[24], records[24], inserted[24], updated[24], unchanged[24], deleted[24],
		repaired[24], rejected[24], bytes[24];
	fmt_ll(pages, sizeof(pages), in->pages);
	fmt_ll(records, sizeof(records), in->records);
	fmt_ll(inserted, sizeof(inserted), out->inserted);
	fmt_ll(updated, sizeof(updated), out->updated);
	fmt_ll(unchanged, sizeof(unchanged), out->unchanged);
	fmt_ll(deleted, sizeof(deleted), out->deleted);
	fmt_ll(repaired, sizeof(repaired), in->repaired);
	fmt_ll(rejected, sizeof(rejected), out->rejected);
	fmt_ll(bytes, sizeof(bytes), in->bytes);
	const char *p_finish[] = {run_id, out->is_partial ? "partial" : "ok", pages, records,
				  inserted, updated, unchanged, deleted, repaired, rejected, bytes,
				  out->is_partial ? out->partial_reason : NULL};
	if (!pgx_cmd(conn, sql_finish_run, (int)ARRAY_LEN(p_finish), p_finish, NULL, err))
		return false;
	if (in->channel && *in->channel) {
		/* delivered at commit, so listeners never see a run that rolled back */
		const char *p_notify[] = {in->channel, run_id};
		PGresult *res = pgx_exec(conn, sql_notify, 2, p_notify, err);
		if (!res)
			return false;
		PQclear(res);
	}
	return true;
}

bool merge_run(PGconn *conn, const struct merge_input *in, struct merge_result *out,
	       struct pgx_err *err)
{
	memset(out, 0, sizeof(*out));
	struct names nm;
	stage_table(nm.items, sizeof(nm.items), "items", in->run_id);
	stage_table(nm.chargers, sizeof(nm.chargers), "chargers", in->run_id);
	stage_table(nm.stations, sizeof(nm.stations), "stations", in->run_id);
	buf_init(&nm.station_values);
	buf_init(&nm.charger_values);
	prefixed(&nm.station_values, STAGE_STATION_COLUMNS);
	prefixed(&nm.charger_values, STAGE_CHARGER_COLUMNS);

	bool ok = buf_ok(&nm.station_values) && buf_ok(&nm.charger_values) &&
		  pgx_begin(conn, err) && merge_body(conn, &nm, in, out, err);
	if (ok && in->dry_run)
		ok = pgx_rollback(conn);
	else if (ok)
		ok = pgx_commit(conn, err);
	if (!ok)
		(void)pgx_rollback(conn);
	buf_free(&nm.station_values);
	buf_free(&nm.charger_values);
	return ok;
}
