/* Fault campaign (issue 9): every fault mode of bin/upstream-sim against
 * realtimed. One row per case (fault_cases in test_fault.h); each row runs
 * as its own test (a loop iteration) against its own simulator and Redis.
 *
 * realtimed starts with the fault on; statuses change in the simulator
 * meanwhile. Where retries cover the fault, Redis equals the simulator
 * while it is still on; once it is lifted (and more statuses change),
 * Redis equals the simulator within a bound. Every quota spent: polling
 * waits for midnight Korea time, says so and writes nothing. realtimed
 * never exits on its own, and SIGTERM ends it with 0. The figures are
 * printed per row. */
#include "testmain.h"

#include "test_fault.h"

START_TEST(realtimed_under_fault)
{
	const struct fault_case *c = &fault_cases[_i];
	struct itest_sim s;
	fault_sim_start(&s, "800");
	struct itest_store redis = {0};
	ck_assert(itest_redis_start(&redis));
	fault_set(&s, c->faults);
	struct itest_proc rt;
	fault_rt_start(&rt, redis.url, &s, FAULT_CLOCK_TS);
	usleep(1000000); /* the bootstrap sweep meets the fault */
	fault_change_statuses(&s, 3, 8, _i);
	usleep(1000000); /* and so do the polls that follow */
	ck_assert_msg(itest_wait(&rt, 0) == -1, "%s: realtimed ended under the fault",
		      c->faults);
	long while_ms = -1;
	if (c->rt == RT_WHILE) {
		/* the simulator's chargers are read with the fault off, then on again */
		fault_set(&s, c->data);
		long n;
		struct fault_charger *cs = fault_sim_chargers(&s, &n);
		fault_set(&s, c->faults);
		char why[512];
		long t0 = apid_now_ms(), bad;
		while ((bad = fault_redis_mismatches(redis.url, cs, n, why, sizeof(why))) > 0) {
			ck_assert_msg(apid_now_ms() - t0 < 20000,
				      "%s: with the fault on, %ld of %ld chargers differ; first %s",
				      c->faults, bad, n, why);
			usleep(200000);
		}
		while_ms = apid_now_ms() - t0;
		free(cs);
	}
	fault_set(&s, c->data);
	if (c->rt == RT_QUOTA) {
		char *log = itest_proc_output(&rt);
		ck_assert_msg(strstr(log, "daily quota is spent"), "%s: %s", c->faults, log);
		free(log);
		char err[256];
		struct rds *r = rds_new(redis.url, 2000, err, sizeof(err));
		ck_assert_msg(r, "%s", err);
		/* nothing was fetched, so nothing is written: no station key */
		redisReply *x = rds_command(r, 2, (const char *[]){"KEYS", "ev:st:*"}, NULL, err,
					    sizeof(err));
		ck_assert_msg(x && x->type == REDIS_REPLY_ARRAY, "%s", err);
		long long keys = (long long)x->elements;
		freeReplyObject(x);
		ck_assert_int_eq(keys, 0);
		rds_free(r);
		printf("realtimed %-60s quota spent: waits for midnight, %lld station keys in Redis\n",
		       c->faults, keys);
		fault_rt_stop(&rt);
		itest_store_stop(&redis, "redis");
		itest_sim_stop(&s);
		return;
	}
	fault_change_statuses(&s, 100, 8, _i + 1);
	long after_ms = fault_redis_converge(redis.url, &s, c->faults, 30000);
	ck_assert_msg(itest_wait(&rt, 0) == -1, "%s: realtimed ended", c->faults);
	printf("realtimed %-60s equal %s%ld ms; after the fault was lifted: %ld ms\n", c->faults,
	       c->rt == RT_WHILE ? "under the fault after " : "(not required under the fault) ",
	       while_ms, after_ms);
	fflush(stdout);
	fault_rt_stop(&rt);
	itest_store_stop(&redis, "redis");
	itest_sim_stop(&s);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("fault_upstream_realtimed");
	TCase *tc = tcase_create("realtimed");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, realtimed_under_fault, 0, (int)ARRAY_LEN(fault_cases));
	suite_add_tcase(s, tc);
	return s;
}
