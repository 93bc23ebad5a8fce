/* Fault campaign (issue 9): every fault mode of bin/upstream-sim against
 * `ingestd chargers`: correct data or a clean failure. One row per case
 * (fault_cases in test_fault.h); each row runs as its own test (a loop
 * iteration) against its own simulator and database.
 *
 * A clean load of epoch 0, then the simulator moves to epoch 1 (adds,
 * changes, removals) and the fault is switched on for one run. Then:
 *   - exit 0: the tables are exactly the simulator's: a clean run right
 *     after (faults off) finds nothing to insert, update or delete and
 *     leaves both live tables as they were (a clean run's exactness is
 *     test_ingest_chargers' subject), and they differ from epoch 0's;
 *   - the documented failures: 69 (page 1 failed) and 78 (configuration
 *     error) leave the live tables untouched (digest equal to epoch 0's);
 *     65 (partial) loads what it has and deletes nothing.
 * No run is left `running`; the clean run after a failure exits 0 and
 * reaches the data. The figures are printed per row. */
#include "testmain.h"

#include "test_fault.h"

static int outcome_of(int rc)
{
	return rc == 0 ? OK : rc == 65 ? PARTIAL : rc == 69 ? UNAVAILABLE : rc == 78 ? CONFIG : 0;
}

/* A digest of both live tables' content (not the run bookkeeping:
 * created_at, updated_at, last_run_id; deleted_at as live or not). */
static char *content_digest(PGconn *pg)
{
	PGresult *res = itest_pg_exec(
		pg, "SELECT md5(coalesce(string_agg(x, ',' ORDER BY x COLLATE \"C\"), '')) FROM ("
		    "SELECT (to_jsonb(s) - 'created_at' - 'updated_at' - 'deleted_at' - "
		    "'last_run_id' || jsonb_build_object('live', s.deleted_at IS NULL))::text AS x "
		    "FROM station s UNION ALL "
		    "SELECT (to_jsonb(c) - 'created_at' - 'updated_at' - 'deleted_at' - "
		    "'last_run_id' || jsonb_build_object('live', c.deleted_at IS NULL))::text "
		    "FROM charger c) t");
	char *d = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return d;
}

static long last_run_col(PGconn *pg, const char *expr)
{
	char *sql = apid_fmt("SELECT %s FROM ingest_run WHERE id = (SELECT max(id) FROM ingest_run)",
			     expr);
	long v = itest_pg_long(pg, sql);
	free(sql);
	return v;
}

START_TEST(ingestd_under_fault)
{
	const struct fault_case *c = &fault_cases[_i];
	struct itest_sim s;
	fault_sim_start(&s, "3000");
	struct apid_env e; /* for its database helpers only */
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	/* 500-row pages: six of them, so page faults hit some and spare others */
	char *const settings[] = {"INGESTD_PAGE_SIZE=500", "INGESTD_RETRIES=4",
				  "INGESTD_BACKOFF_MS=20", "INGESTD_BACKOFF_MAX_MS=100",
				  "INGESTD_CONCURRENCY=2", NULL};
	char *out = NULL;
	ck_assert_msg(fault_ingest(e.db_url, &s, settings, &out) == 0, "epoch 0: %s", out);
	free(out);
	char *epoch0 = content_digest(e.pg);
	itest_sim_admin(&s, "epoch?set=1");

	fault_set(&s, c->faults);
	long t0 = apid_now_ms();
	int rc = fault_ingest(e.db_url, &s, settings, &out);
	long took = apid_now_ms() - t0;
	long run_counts[3] = {last_run_col(e.pg, "coalesce(inserted, 0)"),
			      last_run_col(e.pg, "coalesce(updated, 0)"),
			      last_run_col(e.pg, "coalesce(deleted, 0)")};
	fault_set(&s, c->data);
	int outcome = outcome_of(rc);
	ck_assert_msg(outcome & c->ingest_allowed, "%s: exit %d, not an allowed outcome: %s",
		      c->faults, rc, out);
	ck_assert_int_eq(itest_pg_long(e.pg, "SELECT count(*) FROM ingest_run WHERE status = "
					     "'running'"),
			 0);
	char *after = content_digest(e.pg);
	long deleted = run_counts[2];
	if (outcome == OK) {
		ck_assert_msg(strcmp(after, epoch0) != 0, "%s: exit 0 but epoch 1 not loaded",
			      c->faults);
	} else if (outcome == PARTIAL) {
		ck_assert_msg(deleted == 0, "%s: a partial run deleted %ld", c->faults, deleted);
		ck_assert_int_eq(itest_pg_long(e.pg, "SELECT count(*) FROM charger WHERE deleted_at "
						     "IS NOT NULL"),
				 0);
	} else {
		ck_assert_msg(strcmp(after, epoch0) == 0, "%s: exit %d changed the live tables",
			      c->faults, rc);
	}
	free(out);

	/* the clean run after it */
	char *clean = NULL;
	ck_assert_msg(fault_ingest(e.db_url, &s, settings, &clean) == 0, "clean run: %s", clean);
	free(clean);
	long changes = last_run_col(e.pg, "inserted + updated + deleted");
	char *final = content_digest(e.pg);
	if (outcome == OK) {
		ck_assert_msg(changes == 0 && strcmp(final, after) == 0,
			      "%s: exit 0 (inserted %ld, updated %ld, deleted %ld), but a clean run "
			      "then made %ld changes (inserted %ld, updated %ld, deleted %ld): the "
			      "faulty run's tables were not the simulator's",
			      c->faults, run_counts[0], run_counts[1], run_counts[2], changes,
			      last_run_col(e.pg, "inserted"), last_run_col(e.pg, "updated"),
			      last_run_col(e.pg, "deleted"));
	} else {
		ck_assert_msg(strcmp(final, epoch0) != 0, "%s: the clean run loaded nothing",
			      c->faults);
	}
	printf("ingestd %-62s exit %d in %ld ms (inserted %ld, updated %ld, deleted %ld); the clean "
	       "run after it: %ld changes\n",
	       c->faults, rc, took, run_counts[0], run_counts[1], run_counts[2], changes);
	fflush(stdout);
	free(final);
	free(after);
	free(epoch0);
	apid_teardown(&e);
	itest_sim_stop(&s);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("fault_upstream_ingestd");
	TCase *tc = tcase_create("ingestd");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, ingestd_under_fault, 0, (int)ARRAY_LEN(fault_cases));
	suite_add_tcase(s, tc);
	return s;
}
