/* test_fault.h: what the fault campaigns (test_fault_*.c) share (static
 * helpers; each test binary includes it once): the simulator's chargers
 * read as a client would, Redis compared with them charger by charger,
 * realtimed and `ingestd chargers` run with test-sized settings, and the
 * one fake service key every campaign uses (tests/run.sh greps the logs
 * for it). */
#ifndef TEST_FAULT_H
#define TEST_FAULT_H

#include "kst.h"
#include "test_apid.h"

#define FAULT_KEY "fake-service-key-0009"

/* One charger as the simulator serves it (getChargerInfo, slot order). */
struct fault_charger {
	char stat_id[16], chger_id[8];
	int stat;
	time_t updated;
};

static __attribute__((unused)) const char *fault_item_str(yajl_val it, const char *key)
{
	const char *p[] = {key, NULL};
	yajl_val v = yajl_tree_get(it, p, yajl_t_string);
	ck_assert_msg(v != NULL, "item without %s", key);
	return YAJL_GET_STRING(v);
}

/* Every charger, from one page of at most 9,999 rows (faults must be off). */
static __attribute__((unused)) struct fault_charger *fault_sim_chargers(const struct itest_sim *s,
									 long *count)
{
	char *body = NULL;
	ck_assert_int_eq(itest_sim_get(s,
				       "/B552584/EvCharger/getChargerInfo?serviceKey=" FAULT_KEY
				       "&pageNo=1&numOfRows=9999&dataType=JSON",
				       &body, NULL),
			 200);
	yajl_val v = apid_parse(body);
	free(body);
	const char *ip[] = {"items", "item", NULL}, *tp[] = {"totalCount", NULL};
	yajl_val items = yajl_tree_get(v, ip, yajl_t_array);
	ck_assert_ptr_nonnull(items);
	long n = (long)YAJL_GET_ARRAY(items)->len;
	ck_assert_int_eq(n, YAJL_GET_INTEGER(yajl_tree_get(v, tp, yajl_t_number)));
	struct fault_charger *cs = calloc((size_t)n, sizeof(*cs));
	for (long i = 0; i < n; i++) {
		yajl_val it = YAJL_GET_ARRAY(items)->values[i];
		snprintf(cs[i].stat_id, sizeof(cs[i].stat_id), "%s", fault_item_str(it, "statId"));
		snprintf(cs[i].chger_id, sizeof(cs[i].chger_id), "%s", fault_item_str(it, "chgerId"));
		cs[i].stat = atoi(fault_item_str(it, "stat"));
		ck_assert(kst_parse(fault_item_str(it, "statUpdDt"), &cs[i].updated));
	}
	yajl_tree_free(v);
	*count = n;
	return cs;
}

/* Chargers whose status in Redis (ev:st:{statId}) is not the simulator's
 * (the first described in why); all of them when Redis cannot
 * be reached. A new connection each time: Redis may have restarted. */
static __attribute__((unused)) long fault_redis_mismatches(const char *redis_url,
							   const struct fault_charger *cs, long n,
							   char *why, size_t whylen)
{
	char err[256];
	struct rds *r = rds_new(redis_url, 2000, err, sizeof(err));
	if (!r) {
		snprintf(why, whylen, "redis: %s", err);
		return n;
	}
	long bad = 0;
	why[0] = '\0';
	for (long i = 0; i < n; i++) {
		char key[RKEYS_KEY_MAX], want[64];
		rkeys_station(key, sizeof(key), cs[i].stat_id);
		rkeys_status_format(want, sizeof(want), cs[i].stat, cs[i].updated, false);
		redisReply *x =
			rds_command(r, 2, (const char *[]){"GET", key}, NULL, err, sizeof(err));
		struct rkeys_charger c;
		bool ok = x && x->type == REDIS_REPLY_STRING &&
			  rkeys_live_find(x->str, x->len, cs[i].chger_id, &c) &&
			  c.stat == cs[i].stat && c.updated == (int64_t)cs[i].updated;
		if (!ok && !bad++)
			snprintf(why, whylen, "%s/%s: redis %s, simulator %s", cs[i].stat_id,
				 cs[i].chger_id, x && x->type == REDIS_REPLY_STRING ? x->str : "(none)",
				 want);
		freeReplyObject(x);
	}
	rds_free(r);
	return bad;
}

/* Wait until Redis equals the simulator (faults off while it is read);
 * returns the ms it took. */
static __attribute__((unused)) long fault_redis_converge(const char *redis_url,
							 const struct itest_sim *s,
							 const char *label, int timeout_ms)
{
	long t0 = apid_now_ms(), n, bad;
	struct fault_charger *cs = fault_sim_chargers(s, &n);
	char why[512];
	while ((bad = fault_redis_mismatches(redis_url, cs, n, why, sizeof(why))) > 0) {
		ck_assert_msg(apid_now_ms() - t0 < timeout_ms,
			      "%s: Redis never equalled the simulator: %ld of %ld chargers differ; "
			      "first %s",
			      label, bad, n, why);
		usleep(200000);
	}
	free(cs);
	return apid_now_ms() - t0;
}

/* Override `count` chargers' statuses in the simulator (at its clock's
 * now), from slot `first` on, every 7th, cycling 2 -> 3 -> 4. */
static __attribute__((unused)) void fault_change_statuses(const struct itest_sim *s, long first,
							  int count, int round)
{
	for (int i = 0; i < count; i++) {
		char what[128];
		snprintf(what, sizeof(what), "status?index=%ld&stat=%d", first + 7L * i,
			 2 + (round + i) % 3);
		itest_sim_admin(s, what);
	}
}

/* realtimed on `redis_url` against the simulator, polling every second,
 * on the simulator's fixed clock `clock_ts` (YYYYMMDDHHMMSS). */
static __attribute__((unused)) void fault_rt_start(struct itest_proc *rt, const char *redis_url,
						   const struct itest_sim *s, const char *clock_ts)
{
	char *env[] = {apid_fmt("REDIS_URL=%s", redis_url),
		       apid_fmt("UPSTREAM_URL=%s", s->base),
		       apid_fmt("REALTIMED_CLOCK=fixed:%s", clock_ts),
		       strdup("UPSTREAM_KEYS=" FAULT_KEY),
		       strdup("REALTIMED_ADMIN_PORT=0"),
		       strdup("LOG_FORMAT=json"),
		       strdup("REALTIMED_POLL_INTERVAL=1"),
		       strdup("REALTIMED_STATUS_PERIOD=1"),
		       strdup("REALTIMED_LEASE_MS=1500"),
		       strdup("REALTIMED_BACKOFF_MS=100"),
		       strdup("REALTIMED_BACKOFF_MAX_MS=500"),
		       strdup("REALTIMED_REDIS_TIMEOUT_MS=2000"),
		       strdup("REALTIMED_RESTORE_INGESTD="),
		       NULL};
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("realtimed"));
	char *argv[] = {bin, NULL};
	ck_assert(itest_spawn(rt, argv, env));
	for (int i = 0; env[i]; i++)
		free(env[i]);
}

/* SIGTERM: exit 0 within 15 s, no sanitizer report in its log. */
static __attribute__((unused)) void fault_rt_stop(struct itest_proc *rt)
{
	itest_signal(rt, SIGTERM);
	int rc = itest_wait(rt, 15000);
	char *log = itest_proc_output(rt);
	ck_assert_msg(rc == 0, "realtimed exited %d: %s", rc, log);
	ck_assert_msg(!itest_sanitizer_report(log), "%s", log);
	free(log);
	itest_stop(rt);
}

/* `ingestd chargers` into db_url from the simulator; extra "K=V" settings
 * (NULL-terminated, may be NULL). Returns the exit code, *out the output
 * (caller frees; may be NULL), which must not hold the key. */
static __attribute__((unused)) int fault_ingest(const char *db_url, const struct itest_sim *s,
						char *const extra[], char **out)
{
	char *env[24] = {apid_fmt("DATABASE_URL=%s", db_url), apid_fmt("UPSTREAM_URL=%s", s->base),
			 strdup("UPSTREAM_KEYS=" FAULT_KEY), strdup("LOG_FORMAT=json")};
	int n = 4;
	for (int i = 0; extra && extra[i] && n < 23; i++)
		env[n++] = strdup(extra[i]);
	env[n] = NULL;
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("ingestd"));
	char *argv[] = {bin, "chargers", NULL};
	char *text = NULL;
	int rc = itest_run(argv, env, 120000, &text);
	for (int i = 0; i < n; i++)
		free(env[i]);
	ck_assert_msg(!strstr(text, FAULT_KEY), "the service key reached the log: %s", text);
	if (out)
		*out = text;
	else
		free(text);
	return rc;
}

/* ---- the upstream fault table (test_fault_upstream_*.c) ---- */

/* The simulator's fixed clock: Monday 2024-05-06 14:30 Korea time. */
#define FAULT_CLOCK_TS "20240506143000"

/* The defects whose record still parses as JSON with a valid statUpdDt
 * (the readers here need both; the others are test_ingest_chargers'). */
#define FAULT_MALFORMED                                                                                  \
	"malformed=0.05&malformed_kinds=empty_coords,zero_coords,swapped_coords,unknown_code,"     \
	"overlong,json_numbers,padded,escapes,absent_fields"

enum outcome { OK = 1, PARTIAL = 2, UNAVAILABLE = 4, CONFIG = 8 };

enum rt_expect {
	RT_WHILE, /* Redis equals the simulator with the fault still on (retries cover it) */
	RT_AFTER, /* ... once the fault is lifted */
	RT_QUOTA, /* every key's quota spent: polling waits for midnight Korea time (the
		   * fixed clock never gets there); it says so and writes nothing wrong */
};

/* Every fault mode of docs/simulator.md, transient (retries cover it) and
 * persistent variants, plus malformed records: one row each. */
static const struct fault_case {
	const char *faults;  /* the /__admin/faults query */
	const char *data;    /* what stays when the fault is lifted (malformed records) */
	int ingest_allowed;  /* outcomes ingestd may have */
	enum rt_expect rt;   /* what realtimed must show */
} fault_cases[] __attribute__((unused)) = {
	{"latency=1&latency_ms=150", "", OK, RT_WHILE},
	{"http5xx=0.3", "", OK, RT_WHILE},
	{"http5xx=1", "", UNAVAILABLE, RT_AFTER},
	{"http5xx=page:2", "", PARTIAL, RT_AFTER},
	{"reset=0.3&reset_at=0.5", "", OK, RT_WHILE},
	{"reset=1", "", UNAVAILABLE, RT_AFTER},
	{"truncate=0.3", "", OK, RT_WHILE},
	{"truncate=page:3&truncate_at=0.9", "", PARTIAL, RT_AFTER},
	{"xml_error=0.3&xml_error_code=1", "", OK, RT_WHILE},
	{"xml_error=1&xml_error_code=30", "", CONFIG, RT_AFTER},
	{"xml_error=1&xml_error_code=22", "", UNAVAILABLE, RT_QUOTA}, /* every key's quota spent */
	{"drift=next:1&drift_rows=5", "", OK | PARTIAL, RT_AFTER},
	{"drift=0.5&drift_rows=3", "", OK | PARTIAL, RT_AFTER},
	{"total_mismatch=next:2&total_delta=-3", "", OK, RT_WHILE},
	{"total_mismatch=1&total_delta=40", "", PARTIAL, RT_AFTER}, /* a page past the end */
	{"xml_shapes=1", "", OK, RT_WHILE},
	{"empty_body=0.3", "", OK, RT_WHILE},
	{"empty_body=1", "", UNAVAILABLE, RT_AFTER},
	{"service_error=0.3&service_error_code=99", "", OK, RT_WHILE},
	{"service_error=1&service_error_code=22&service_error_format=json", "", UNAVAILABLE, RT_QUOTA},
	{FAULT_MALFORMED, FAULT_MALFORMED, OK, RT_WHILE}, /* kept when the faults are lifted */
};

/* A simulator with the campaign's key and clock. */
static __attribute__((unused)) void fault_sim_start(struct itest_sim *s, const char *chargers)
{
	itest_sim_start(s, (const char *const[]){"--seed", "17", "--chargers", chargers, "--keys",
						 FAULT_KEY, "--clock", "fixed:" FAULT_CLOCK_TS, NULL});
}

static __attribute__((unused)) void fault_set(const struct itest_sim *s, const char *query)
{
	char *what = apid_fmt("faults?clear=1&seed=5%s%s", *query ? "&" : "", query);
	itest_sim_admin(s, what);
	free(what);
}

#endif
