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

#include "kst.h"
#include "model.h"
#include "test_apid.h"

#define KEY	 "fake-service-key-0009"
#define CLOCK_TS "20240506143000"
#define CHARGERS 1200

static char *fixed_url(int port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *fixed_url(int port, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *path = NULL;
	ck_assert_int_ge(vasprintf(&path, fmt, ap), 0);
	va_end(ap);
	char *url = apid_fmt("http://127.0.0.1:%d%s", port, path);
	free(path);
	return url;
}

/* ---- the simulator's view ---- */

struct charger {
	char stat_id[16], chger_id[8];
	int stat;
	time_t updated;
};

static const char *item_str(yajl_val it, const char *key)
{
	const char *p[] = {key, NULL};
	yajl_val v = yajl_tree_get(it, p, yajl_t_string);
	ck_assert_msg(v != NULL, "item without %s", key);
	return YAJL_GET_STRING(v);
}

static struct charger *sim_chargers(const struct itest_sim *s, long *count)
{
	char *url = fixed_url(s->port, "/B552584/EvCharger/getChargerInfo?serviceKey=" KEY
					"&pageNo=1&numOfRows=9999&dataType=JSON");
	char *body = NULL;
	ck_assert_int_eq(itest_http_get(url, &body, NULL), 200);
	free(url);
	yajl_val v = apid_parse(body);
	free(body);
	const char *ip[] = {"items", "item", NULL};
	yajl_val items = yajl_tree_get(v, ip, yajl_t_array);
	ck_assert_ptr_nonnull(items);
	long n = (long)YAJL_GET_ARRAY(items)->len;
	ck_assert_int_eq(n, CHARGERS);
	struct charger *cs = calloc((size_t)n, sizeof(*cs));
	for (long i = 0; i < n; i++) {
		yajl_val it = YAJL_GET_ARRAY(items)->values[i];
		snprintf(cs[i].stat_id, sizeof(cs[i].stat_id), "%s", item_str(it, "statId"));
		snprintf(cs[i].chger_id, sizeof(cs[i].chger_id), "%s", item_str(it, "chgerId"));
		cs[i].stat = atoi(item_str(it, "stat"));
		ck_assert(kst_parse(item_str(it, "statUpdDt"), &cs[i].updated));
	}
	yajl_tree_free(v);
	*count = n;
	return cs;
}

/* ---- realtimed's view: the Redis hashes ---- */

static long redis_mismatches(struct apid_env *e, const struct charger *cs, long n, char *why,
			     size_t whylen)
{
	char err[256];
	rds_free(e->redis);
	e->redis = rds_new(e->redis_url, 2000, err, sizeof(err));
	if (!e->redis) {
		snprintf(why, whylen, "redis: %s", err);
		return n;
	}
	long bad = 0;
	why[0] = '\0';
	for (long i = 0; i < n; i++) {
		char key[RKEYS_KEY_MAX], want[64];
		rkeys_station(key, sizeof(key), cs[i].stat_id);
		rkeys_status_format(want, sizeof(want), cs[i].stat, cs[i].updated);
		redisReply *r = rds_command(e->redis, 3, (const char *[]){"HGET", key, cs[i].chger_id},
					    NULL, err, sizeof(err));
		bool ok = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
		if (!ok && !bad++)
			snprintf(why, whylen, "%s/%s: redis %s, simulator %s", cs[i].stat_id,
				 cs[i].chger_id, r && r->type == REDIS_REPLY_STRING ? r->str : "(none)",
				 want);
		freeReplyObject(r);
	}
	return bad;
}

/* ---- apid's view: every station's chargers, in chgerId order ---- */

static long apid_mismatches(struct apid_env *e, const struct charger *cs, long n, char *why,
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

/* Wait until both Redis and apid equal the simulator; returns the ms it took. */
static long converge(struct apid_env *e, const struct itest_sim *s, const char *label,
		     int timeout_ms)
{
	long t0 = apid_now_ms(), n;
	struct charger *cs = sim_chargers(s, &n);
	char why[512];
	long bad;
	while ((bad = redis_mismatches(e, cs, n, why, sizeof(why))) > 0) {
		ck_assert_msg(apid_now_ms() - t0 < timeout_ms,
			      "%s: Redis never equalled the simulator: %ld of %ld chargers differ; "
			      "first %s",
			      label, bad, n, why);
		usleep(200000);
	}
	long redis_ms = apid_now_ms() - t0;
	while ((bad = apid_mismatches(e, cs, n, why, sizeof(why))) > 0) {
		ck_assert_msg(apid_now_ms() - t0 < timeout_ms,
			      "%s: apid never showed the simulator's states: %ld chargers differ; "
			      "first %s",
			      label, bad, why);
		usleep(200000);
	}
	long all_ms = apid_now_ms() - t0;
	printf("redis_restart %s: %ld chargers; Redis equal after %ld ms, apid after %ld ms\n",
	       label, n, redis_ms, all_ms);
	fflush(stdout);
	free(cs);
	return all_ms;
}

/* Override `count` chargers' statuses in the simulator, from slot `first`
 * on, every 7th, cycling 2 -> 3 -> 4 -> 2. */
static void change_statuses(const struct itest_sim *s, long first, int count, int round)
{
	for (int i = 0; i < count; i++) {
		char what[128];
		snprintf(what, sizeof(what), "status?index=%ld&stat=%d", first + 7L * i,
			 2 + (round + i) % 3);
		itest_sim_admin(s, what);
	}
}

static void redis_cmd(struct apid_env *e, const char *cmd)
{
	apid_redis(e, 1, (const char *[]){cmd});
}

struct rt {
	struct itest_proc proc;
};

static void rt_start(struct rt *rt, const struct apid_env *e, const struct itest_sim *s)
{
	char *env[] = {apid_fmt("REDIS_URL=%s", e->redis_url),
		       apid_fmt("UPSTREAM_URL=%s", s->base),
		       strdup("UPSTREAM_KEYS=" KEY),
		       strdup("REALTIMED_ADMIN_PORT=0"),
		       strdup("LOG_FORMAT=json"),
		       strdup("REALTIMED_POLL_INTERVAL=1"),
		       strdup("REALTIMED_STATUS_PERIOD=1"),
		       strdup("REALTIMED_LEASE_MS=1500"),
		       strdup("REALTIMED_BACKOFF_MS=100"),
		       strdup("REALTIMED_BACKOFF_MAX_MS=500"),
		       strdup("REALTIMED_REDIS_TIMEOUT_MS=2000"),
		       strdup("REALTIMED_CLOCK=fixed:" CLOCK_TS),
		       strdup("REALTIMED_RESTORE_INGESTD="),
		       NULL};
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("realtimed"));
	char *argv[] = {bin, NULL};
	ck_assert(itest_spawn(&rt->proc, argv, env));
	for (int i = 0; env[i]; i++)
		free(env[i]);
}

static void rt_stop(struct rt *rt)
{
	itest_signal(&rt->proc, SIGTERM);
	int rc = itest_wait(&rt->proc, 15000);
	char *log = itest_proc_output(&rt->proc);
	ck_assert_msg(rc == 0, "realtimed exited %d: %s", rc, log);
	ck_assert_msg(!itest_sanitizer_report(log), "%s", log);
	free(log);
	itest_stop(&rt->proc);
}

static void both_running(struct apid_env *e, struct rt *rt, const char *when)
{
	ck_assert_msg(itest_wait(&rt->proc, 0) == -1, "realtimed ended %s", when);
	ck_assert_msg(itest_wait(&e->proc, 0) == -1, "apid ended %s", when);
}

static void load_chargers(struct apid_env *e, const struct itest_sim *s)
{
	char *db = apid_fmt("DATABASE_URL=%s", e->db_url);
	char *up = apid_fmt("UPSTREAM_URL=%s", s->base);
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("ingestd"));
	char *argv[] = {bin, "chargers", NULL};
	char *env[] = {db, up, "UPSTREAM_KEYS=" KEY, "LOG_LEVEL=warn", NULL};
	char *out = NULL;
	int rc = itest_run(argv, env, 120000, &out);
	ck_assert_msg(rc == 0, "ingestd chargers exited %d: %s", rc, out);
	free(out);
	free(db);
	free(up);
}

START_TEST(redis_restarted_under_realtimed_and_apid)
{
	struct itest_sim s;
	itest_sim_start(&s, (const char *const[]){"--seed", "9", "--chargers", "1200", "--keys", KEY,
						  "--clock", "fixed:" CLOCK_TS, NULL});
	struct itest_store redis = {0};
	ck_assert(itest_redis_start(&redis));
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	apid_redis_setup(&e, redis.url);
	load_chargers(&e, &s);
	struct rt rt;
	rt_start(&rt, &e, &s);
	apid_start(&e, (char *[]){"APID_LIVE_STALE_SECONDS=60", "APID_REDIS_TIMEOUT_MS=500", NULL},
		   true);
	converge(&e, &s, "start", 30000);
	change_statuses(&s, 3, 10, 0);
	converge(&e, &s, "changes", 20000);

	/* 1. kill -9 after a snapshot; the changes made after it are lost with
	 * the restart, others happen while Redis is down */
	redis_cmd(&e, "SAVE");
	change_statuses(&s, 5, 10, 1);
	converge(&e, &s, "after the snapshot", 20000);
	ck_assert(itest_store_ctl(&redis, "redis", "kill"));
	change_statuses(&s, 200, 10, 2);
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
	change_statuses(&s, 400, 10, 3);
	usleep(1500000);
	both_running(&e, &rt, "while Redis was down");
	ck_assert(itest_store_ctl(&redis, "redis", "start"));
	converge(&e, &s, "empty restart", 30000);
	/* live changes flow again through both */
	change_statuses(&s, 600, 10, 4);
	converge(&e, &s, "changes after the restarts", 20000);
	both_running(&e, &rt, "at the end");

	rt_stop(&rt);
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
