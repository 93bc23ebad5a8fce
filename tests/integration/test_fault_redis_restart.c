/* Fault campaign (issue 9): Redis restarted under realtimed and apid.
 *
 * realtimed and apid share one private Redis; the simulator (fixed clock)
 * is the upstream and `ingestd chargers` loaded its chargers into
 * PostgreSQL for apid. Statuses change in the simulator before, during and
 * after each outage. Two restarts:
 *   - with its data: a snapshot (SAVE) is taken, changes are applied after
 *     it, then kill -9; Redis comes back from the snapshot, i.e. older than
 *     what realtimed had written (what an RDB-persisted Redis does);
 *   - empty: kill -9 with the snapshot removed; Redis comes back with
 *     nothing.
 * After each: Redis holds exactly the simulator's status of every charger
 * (realtimed converged), apid answers every station with the simulator's
 * live states (apid's follower converged), and neither daemon crashed (both
 * still run; SIGTERM exits 0 at the end). Convergence times are printed. */
#include "testmain.h"

#include "model.h"
#include "test_fault.h"

/* ---- apid's view: every station's chargers, in chgerId order ---- */

static long apid_mismatches(struct apid_env *e, const struct fault_charger *cs, long n, char *why,
			    size_t whylen)
{
	long bad = 0;
	why[0] = '\0';
	for (long i = 0; i < n;) {
		long j = i;
		while (j < n && strcmp(cs[j].stat_id, cs[i].stat_id) == 0)
			j++;
		char *path = apid_fmt("/stations/%s", cs[i].stat_id), *body = NULL;
		long status = apid_get(e, path, &body);
		free(path);
		char errbuf[128];
		yajl_val v = status == 200 && body ? yajl_tree_parse(body, errbuf, sizeof(errbuf))
						   : NULL;
		yajl_val list = jkey(v, "chargers");
		for (long k = i; k < j; k++) {
			yajl_val ch = list && (size_t)(k - i) < jlen(list) ? jat(list, (size_t)(k - i))
									   : NULL;
			yajl_val state = jkey(ch, "state");
			const char *want = model_status_name(cs[k].stat);
			const char *got = state && YAJL_IS_STRING(state) ? YAJL_GET_STRING(state)
									 : "(none)";
			if (strcmp(got, want) != 0 && !bad++)
				snprintf(why, whylen, "%s charger %ld (%s): apid %s (HTTP %ld), "
						      "simulator %s",
					 cs[k].stat_id, k - i, cs[k].chger_id, got, status, want);
		}
		if (v && jlen(list) != (size_t)(j - i) && !bad++)
			snprintf(why, whylen, "%s: apid lists %zu chargers, simulator %ld",
				 cs[i].stat_id, jlen(list), j - i);
		yajl_tree_free(v);
		free(body);
		i = j;
	}
	return bad;
}

/* Wait until both Redis and apid equal the simulator. */
static void converge(struct apid_env *e, const struct itest_sim *s, const char *label,
		     int timeout_ms)
{
	long t0 = apid_now_ms();
	long redis_ms = fault_redis_converge(e->redis_url, s, label, timeout_ms), n, bad;
	struct fault_charger *cs = fault_sim_chargers(s, &n);
	char why[512];
	while ((bad = apid_mismatches(e, cs, n, why, sizeof(why))) > 0) {
		ck_assert_msg(apid_now_ms() - t0 < timeout_ms,
			      "%s: apid never showed the simulator's states: %ld chargers differ; "
			      "first %s",
			      label, bad, why);
		usleep(200000);
	}
	printf("redis_restart %s: %ld chargers; Redis equal after %ld ms, apid after %ld ms\n",
	       label, n, redis_ms, apid_now_ms() - t0);
	fflush(stdout);
	free(cs);
}

static void redis_cmd(struct apid_env *e, const char *cmd)
{
	apid_redis(e, 1, (const char *[]){cmd});
}

static void both_running(struct apid_env *e, struct itest_proc *rt, const char *when)
{
	ck_assert_msg(itest_wait(rt, 0) == -1, "realtimed ended %s", when);
	ck_assert_msg(itest_wait(&e->proc, 0) == -1, "apid ended %s", when);
}

START_TEST(redis_restarted_under_realtimed_and_apid)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){"--seed", "9", "--chargers", "1200", "--keys", FAULT_KEY,
						  "--clock", "fixed:" FAULT_CLOCK_TS, NULL});
	struct itest_store redis = {0};
	ck_assert(itest_redis_start(&redis));
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	apid_redis_setup(&e, redis.url);
	char *out = NULL;
	ck_assert_msg(fault_ingest(e.db_url, &s, NULL, &out) == 0, "ingestd chargers: %s", out);
	free(out);
	struct itest_proc rt;
	fault_rt_start(&rt, e.redis_url, &s, FAULT_CLOCK_TS);
	apid_start(&e, (char *[]){"APID_LIVE_STALE_SECONDS=60", "APID_REDIS_TIMEOUT_MS=500", NULL},
		   true);
	converge(&e, &s, "start", 30000);
	fault_change_statuses(&s, 3, 10, 0);
	converge(&e, &s, "changes", 20000);

	/* 1. kill -9 after a snapshot; the changes made after it are lost with
	 * the restart, others happen while Redis is down */
	redis_cmd(&e, "SAVE");
	fault_change_statuses(&s, 5, 10, 1);
	converge(&e, &s, "after the snapshot", 20000);
	ck_assert(itest_store_ctl(&redis, "redis", "kill"));
	fault_change_statuses(&s, 200, 10, 2);
	usleep(1500000);
	both_running(&e, &rt, "while Redis was down");
	ck_assert(itest_store_ctl(&redis, "redis", "start"));
	char *dump = apid_fmt("%s/redis/dump.rdb", redis.dir);
	ck_assert_msg(access(dump, R_OK) == 0, "no snapshot at %s", dump);
	converge(&e, &s, "restart from the snapshot", 30000);
	both_running(&e, &rt, "after the restart from the snapshot");

	/* 2. kill -9 and back empty */
	ck_assert(itest_store_ctl(&redis, "redis", "kill"));
	ck_assert_int_eq(unlink(dump), 0);
	fault_change_statuses(&s, 400, 10, 3);
	usleep(1500000);
	both_running(&e, &rt, "while Redis was down");
	ck_assert(itest_store_ctl(&redis, "redis", "start"));
	converge(&e, &s, "empty restart", 30000);
	/* live changes flow again through both */
	fault_change_statuses(&s, 600, 10, 4);
	converge(&e, &s, "changes after the restarts", 20000);
	both_running(&e, &rt, "at the end");

	fault_rt_stop(&rt);
	apid_teardown(&e);
	free(dump);
	itest_store_stop(&redis, "redis");
	itest_sim_stop(&s);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("fault_redis_restart");
	TCase *tc = tcase_create("redis_restart");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, redis_restarted_under_realtimed_and_apid);
	suite_add_tcase(s, tc);
	return s;
}
