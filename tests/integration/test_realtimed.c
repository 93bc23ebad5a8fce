/* realtimed's statuses and counters against a private Redis and the
 * upstream simulator: the bootstrap sweep equals the simulator (statuses
 * and availability, read from the simulator independently), deltas are
 * applied and an older status never overwrites a newer one, congestion
 * counters after K samples equal the counts of the simulator's usage
 * formula (recomputed here) exactly, a Redis restart converges, an outage
 * beyond the status window sweeps again, chargers removed upstream are
 * removed by a complete sweep, and an empty Redis gets its counters back
 * from the PostgreSQL snapshot. Lease, fencing, signals and operations:
 * test_realtimed_lease.c. */
#include "test_realtimed_env.h"

/* ---- bootstrap ---- */

START_TEST(bootstrap_equals_simulator)
{
	struct env e;
	env_start(&e, 3000, NULL);
	struct rt rt;
	rt_start(&e, &rt, "a", NULL);
	wait_bootstrap(&e);
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	ck_assert_int_eq(n, 3000);
	char why[512];
	long bad = mismatches(e.r, cs, n, why, sizeof(why));
	ck_assert_msg(bad == 0, "%ld of %ld chargers differ; first %s", bad, n, why);

	ck_assert_int_gt(assert_availability(e.r, cs, n), 500);

	/* seeding is no change: the stream stays empty */
	redisReply *x = CMD(e.r, "XLEN", RKEYS_CHANGES);
	ck_assert_int_eq(x->integer, 0);
	freeReplyObject(x);
	/* the lease holds the writer's token */
	char *lease = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
	char *instance = get_string(e.r, "HGET", RKEYS_HEARTBEAT, "instance", NULL);
	ck_assert_ptr_nonnull(lease);
	ck_assert_str_eq(lease, instance);
	ck_assert_int_eq(strlen(lease), 32);
	free(lease);
	free(instance);

	/* operations endpoints */
	char *body = NULL;
	ck_assert_int_eq(rt_get(&rt, "/healthz", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "\"role\":\"active\""));
	ck_assert_ptr_nonnull(strstr(body, "\"chargers\":3000"));
	free(body);
	ck_assert_int_eq(rt_get(&rt, "/metrics", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "realtimed_statuses_applied_total 3000\n"));
	ck_assert_ptr_nonnull(
		strstr(body, "realtimed_passes_total{kind=\"sweep\",outcome=\"complete\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(body, "realtimed_lease_held 1\n"));
	free(body);
	ck_assert_int_eq(rt_get(&rt, "/nope", &body), 404);
	free(body);
	/* the service key never reaches the log */
	ck_assert(!rt_log_has(&rt, "test-key"));

	rt_stop(&rt, 10000);
	free(cs);
	env_stop(&e);
}
END_TEST

/* ---- deltas ---- */

START_TEST(deltas_applied_older_never_wins)
{
	struct env e;
	env_start(&e, 2000, NULL);
	struct rt rt;
	rt_start(&e, &rt, "a", NULL);
	wait_bootstrap(&e);
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	time_t t0;
	ck_assert(kst_parse(CLOCK_TS, &t0));
	char want[64];

	/* a delta: applied within a few polls, streamed, availability kept */
	int new_stat = cs[10].stat == 5 ? 4 : 5;
	sim_set_status(&e.sim, 10, new_stat);
	rkeys_status_format(want, sizeof(want), new_stat, t0, cs[10].quick);
	long t_set = now_ms();
	wait_status(e.r, &cs[10], want, 5000);
	ck_assert_int_le(now_ms() - t_set, 1000 + 2000); /* T + 2 s, T = 1 s */
	redisReply *x = CMD(e.r, "XRANGE", RKEYS_CHANGES, "-", "+");
	ck_assert_int_ge(x->elements, 1);
	const redisReply *fields = x->element[x->elements - 1]->element[1];
	ck_assert_int_eq(fields->elements, 8);
	ck_assert_str_eq(fields->element[1]->str, cs[10].stat_id);
	ck_assert_str_eq(fields->element[3]->str, cs[10].chger_id);
	ck_assert_int_eq(atoi(fields->element[5]->str), new_stat);
	ck_assert_int_eq(atoll(fields->element[7]->str), (long long)t0);
	freeReplyObject(x);
	char key[RKEYS_KEY_MAX];
	char *av = stored_availability(e.r, cs[10].stat_id);
	int standby, total, quick;
	ck_assert(av && sscanf(av, "%d:%d:%d", &standby, &total, &quick) == 3);
	long want_standby = 0, want_total = 0;
	for (long i = 0; i < n; i++)
		if (strcmp(cs[i].stat_id, cs[10].stat_id) == 0) {
			want_total++;
			want_standby += i == 10 ? 0 : cs[i].stat == 2;
		}
	ck_assert_int_eq(standby, want_standby);
	ck_assert_int_eq(total, want_total);
	free(av);

	/* out of order from the upstream: a later status, then the clock goes
	 * back and an earlier one is served for the same charger */
	sim_admin(&e.sim, "/__admin/clock?advance=120");
	sim_set_status(&e.sim, 11, 3);
	rkeys_status_format(want, sizeof(want), 3, t0 + 120, cs[11].quick);
	wait_status(e.r, &cs[11], want, 5000);
	sim_admin(&e.sim, "/__admin/clock?set=20240506143100"); /* t0 + 60 */
	sim_set_status(&e.sim, 11, 9);
	char *served = sim_get(&e.sim, "/__admin/charger?index=11");
	ck_assert_ptr_nonnull(strstr(served, "\"stat\":\"9\""));
	ck_assert_ptr_nonnull(strstr(served, "\"statUpdDt\":\"20240506143100\""));
	free(served);
	/* several polls deliver the older status: it must not win */
	usleep(3500000);
	char *got = stored_status(e.r, &cs[11]);
	ck_assert_str_eq(got, want);
	free(got);

	/* out of order in Redis: a newer status already stored (by the active
	 * instance before a takeover, a replay) is never overwritten by an older
	 * one the poll brings. The writer learns what Redis holds when its
	 * connection or lease begins: the connection is cut to make it read
	 * again. */
	rkeys_station(key, sizeof(key), cs[12].stat_id);
	char newer[64];
	rkeys_status_format(newer, sizeof(newer), 4, t0 + 100000, cs[12].quick);
	size_t old_len = 0;
	char *old = get_string(e.r, "GET", key, NULL, &old_len);
	char *value = itest_live_value_with(old, old_len, cs[12].chger_id, 4, t0 + 100000,
					    cs[12].quick);
	freeReplyObject(CMD(e.r, "SET", key, value));
	free(old);
	free(value);
	freeReplyObject(CMD(e.r, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"));
	sim_set_status(&e.sim, 12, 2); /* at t0 + 60: newer than the table knows */
	long deadline = now_ms() + 8000;
	for (;;) {
		char *m = NULL;
		rt_get(&rt, "/metrics", &m);
		const char *at = strstr(m, "\nrealtimed_statuses_stale_total ");
		long stale = at ? atol(at + strlen("\nrealtimed_statuses_stale_total ")) : 0;
		free(m);
		if (stale >= 1)
			break;
		ck_assert_msg(now_ms() < deadline, "the older status was never sent and refused");
		usleep(100000);
	}
	got = stored_status(e.r, &cs[12]);
	ck_assert_str_eq(got, newer);
	free(got);

	rt_stop(&rt, 10000);
	free(cs);
	env_stop(&e);
}
END_TEST

/* ---- congestion ---- */

START_TEST(congestion_counts_equal_formula)
{
	struct env e;
	env_start(&e, 600, NULL);
	long long k = sample_k_times(&e, 4);
	ck_assert_int_eq(hb(e.r, "sample_done"), hb(e.r, "sample_started"));
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	struct counted got = check_counters(e.r, cs, n, k, hb(e.r, "sample_done"));
	/* Monday 14 h: about 23.5% charge; 0.8% are out of service */
	ck_assert_int_gt(got.charging, n / 10);
	ck_assert_int_lt(got.charging, n / 2);
	ck_assert_int_gt(got.down, 0);
	ck_assert_int_lt(got.down, n / 20);
	free(cs);
	env_stop(&e);
}
END_TEST

/* ---- Redis restart ---- */

START_TEST(redis_restart_converges)
{
	struct env e;
	env_start(&e, 1500, NULL);
	struct rt rt;
	rt_start(&e, &rt, "a", NULL);
	wait_bootstrap(&e);

	ck_assert(itest_store_ctl(&e.redis, "redis", "kill"));
	/* changes while Redis is gone */
	sim_admin(&e.sim, "/__admin/clock?advance=20");
	for (long i = 100; i < 110; i++)
		sim_set_status(&e.sim, i, 4);
	usleep(1500000);
	ck_assert_int_eq(itest_wait(&rt.proc, 0), -1); /* still running */
	ck_assert(itest_store_ctl(&e.redis, "redis", "start"));
	env_reconnect(&e);

	/* the empty Redis is seeded again from memory, and the changes polled */
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	char why[512];
	long deadline = now_ms() + 20000, bad;
	while ((bad = mismatches(e.r, cs, n, why, sizeof(why))) > 0) {
		ck_assert_msg(now_ms() < deadline, "%ld chargers differ; first %s", bad, why);
		usleep(200000);
	}
	ck_assert_int_eq(itest_wait(&rt.proc, 0), -1);
	wait_log(&rt, "re-applying", 1000);
	char *body = NULL;
	deadline = now_ms() + 5000;
	while (rt_get(&rt, "/healthz", &body) != 200) {
		ck_assert_msg(now_ms() < deadline, "unhealthy after the restart: %s", body);
		free(body);
		usleep(100000);
	}
	free(body);
	rt_stop(&rt, 10000);
	free(cs);
	env_stop(&e);
}
END_TEST

/* ---- an outage longer than the status window ---- */

START_TEST(outage_beyond_the_window_sweeps_again)
{
	struct env e;
	env_start(&e, 800, NULL);
	struct rt rt;
	rt_start(&e, &rt, "a", NULL);
	wait_bootstrap(&e);
	long long first_sweep = hb(e.r, "sweep_ok_ms");
	rt_stop(&rt, 10000);
	long stopped = now_ms();

	/* a change the status window no longer shows when realtimed is back:
	 * made at the simulator's t0 + 120 s, then two more minutes pass there */
	sim_admin(&e.sim, "/__admin/clock?advance=120");
	sim_set_status(&e.sim, 42, 4);
	sim_admin(&e.sim, "/__admin/clock?advance=120");
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	yajl_val window = sim_json(&e.sim, "/B552584/EvCharger/getChargerStatus?serviceKey=test-key"
					   "&pageNo=1&numOfRows=9999&dataType=JSON&period=1");
	const char *ip[] = {"items", "item", NULL};
	yajl_val items = yajl_tree_get(window, ip, yajl_t_array);
	for (size_t i = 0; items && i < YAJL_GET_ARRAY(items)->len; i++) {
		yajl_val it = YAJL_GET_ARRAY(items)->values[i];
		ck_assert_msg(strcmp(str_at(it, "statId"), cs[42].stat_id) != 0 ||
				      strcmp(str_at(it, "chgerId"), cs[42].chger_id) != 0,
			      "the change is still inside the status window");
	}
	yajl_tree_free(window);

	/* down longer than REALTIMED_STATUS_PERIOD (1 min) less the margin */
	long down_ms = (60 - 5 + 2) * 1000L;
	while (now_ms() - stopped < down_ms)
		usleep(200000);
	rt_start(&e, &rt, "a2", NULL);
	wait_hb(e.r, "sweep_ok_ms", first_sweep + 1, 30000);
	wait_log(&rt, "beyond the 1-minute status window: sweeping", 1000);
	char why[512];
	long bad = mismatches(e.r, cs, n, why, sizeof(why));
	ck_assert_msg(bad == 0, "%ld chargers differ after the sweep; first %s", bad, why);
	rt_stop(&rt, 10000);
	free(cs);
	env_stop(&e);
}
END_TEST


/* ---- chargers removed upstream ---- */

/* Chargers over every station value in Redis (each well-formed). */
static long redis_chargers(struct rds *r)
{
	redisReply *keys = CMD(r, "KEYS", RKEYS_STATION_PREFIX "*");
	long n = 0;
	for (size_t k = 0; k < keys->elements; k++) {
		size_t len = 0, at;
		char *value = get_string(r, "GET", keys->element[k]->str, NULL, &len);
		struct rkeys_avail av;
		struct rkeys_charger c;
		ck_assert_msg(value && rkeys_live_head(value, len, &av, &at), "%s: %s",
			      keys->element[k]->str, value ? value : "(not a string)");
		int next;
		while ((next = rkeys_live_next(value, len, &at, &c)) == 1)
			n++;
		ck_assert_msg(next == 0, "%s: malformed %s", keys->element[k]->str, value);
		free(value);
	}
	freeReplyObject(keys);
	return n;
}

/* A metric's value on the admin port (-1 when absent). */
static double rt_metric(const struct rt *rt, const char *series)
{
	char *body = NULL;
	ck_assert_int_eq(rt_get(rt, "/metrics", &body), 200);
	double v = -1;
	size_t len = strlen(series);
	for (char *line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, series, len) == 0 && line[len] == ' ')
			v = atof(line + len + 1);
	free(body);
	return v;
}

static bool has_charger(const struct charger *cs, long n, const struct charger *c)
{
	for (long i = 0; i < n; i++)
		if (strcmp(cs[i].stat_id, c->stat_id) == 0 && strcmp(cs[i].chger_id, c->chger_id) == 0)
			return true;
	return false;
}

/* The simulator's next epoch removes chargers (and whole stations): a
 * partial sweep removes nothing; the next complete one removes exactly
 * them from the station values, their availability recomputed, emptied
 * stations' keys deleted, and counts them. */
START_TEST(complete_sweep_removes_chargers_gone_upstream)
{
	struct env e;
	env_start(&e, 3000, NULL);
	char *extra[] = {"REALTIMED_PAGE_SIZE=500", "REALTIMED_SWEEP_INTERVAL=2",
			 "REALTIMED_RETRIES=0", NULL};
	struct rt rt;
	rt_start(&e, &rt, "a", extra);
	wait_bootstrap(&e);
	long n0, n1;
	struct charger *cs0 = sim_chargers(&e.sim, &n0);
	ck_assert_int_eq(redis_chargers(e.r), n0);

	/* every sweep fails at page 2 (one partial seen: none in flight is
	 * complete any more); then epoch 1 */
	sim_admin(&e.sim, "/__admin/faults?http5xx=page:2");
	const char *partial = "realtimed_passes_total{kind=\"sweep\",outcome=\"partial\"}";
	long deadline = now_ms() + 20000;
	while (rt_metric(&rt, partial) < 1) {
		ck_assert_msg(now_ms() < deadline, "no partial sweep");
		usleep(100000);
	}
	sim_admin(&e.sim, "/__admin/epoch?set=1");
	struct charger *cs1 = sim_chargers(&e.sim, &n1);
	long removed = 0;
	for (long i = 0; i < n0; i++)
		removed += !has_charger(cs1, n1, &cs0[i]);
	ck_assert_int_gt(removed, 0);
	deadline = now_ms() + 20000;
	while (rt_metric(&rt, partial) < 3) {
		ck_assert_msg(now_ms() < deadline, "no partial sweeps");
		usleep(100000);
	}
	/* (pages that did arrive added the epoch's new chargers: statuses are facts) */
	for (long i = 0; i < n0; i++) {
		char *got = stored_status(e.r, &cs0[i]);
		ck_assert_msg(got, "%s/%s removed after a partial sweep", cs0[i].stat_id,
			      cs0[i].chger_id);
		free(got);
	}
	ck_assert(rt_metric(&rt, "realtimed_chargers_removed_total") == 0);

	/* the upstream whole again: the next complete sweep prunes */
	sim_admin(&e.sim, "/__admin/faults?http5xx=off");
	deadline = now_ms() + 20000;
	while (rt_metric(&rt, "realtimed_chargers_removed_total") < removed) {
		ck_assert_msg(now_ms() < deadline, "removed %.0f of %ld",
			      rt_metric(&rt, "realtimed_chargers_removed_total"), removed);
		usleep(100000);
	}
	char why[512];
	long bad = mismatches(e.r, cs1, n1, why, sizeof(why));
	ck_assert_msg(bad == 0, "%ld of %ld chargers differ; first %s", bad, n1, why);
	ck_assert_int_eq(redis_chargers(e.r), n1);
	for (long i = 0; i < n0; i++) {
		if (has_charger(cs1, n1, &cs0[i]))
			continue;
		char *got = stored_status(e.r, &cs0[i]);
		ck_assert_msg(!got, "%s/%s still in Redis", cs0[i].stat_id, cs0[i].chger_id);
		bool station_left = false;
		for (long j = 0; j < n1 && !station_left; j++)
			station_left = strcmp(cs1[j].stat_id, cs0[i].stat_id) == 0;
		if (!station_left) {
			char key[RKEYS_KEY_MAX];
			rkeys_station(key, sizeof(key), cs0[i].stat_id);
			redisReply *kept = CMD(e.r, "EXISTS", key);
			ck_assert_msg(kept->integer == 0, "%s left behind", key);
			freeReplyObject(kept);
		}
	}
	assert_availability(e.r, cs1, n1);
	ck_assert(rt_metric(&rt, "realtimed_chargers_removed_total") == removed);
	/* each removal is in the change stream ("s c gone=1"): followers drop
	 * the charger; a charger still listed never gets one */
	redisReply *x = CMD(e.r, "XRANGE", RKEYS_CHANGES, "-", "+");
	long gone = 0;
	for (size_t k = 0; k < x->elements; k++) {
		const redisReply *f = x->element[k]->element[1];
		if (f->elements != 6 || strcmp(f->element[4]->str, "gone") != 0)
			continue;
		ck_assert_str_eq(f->element[0]->str, "s");
		ck_assert_str_eq(f->element[2]->str, "c");
		ck_assert_str_eq(f->element[5]->str, "1");
		struct charger c = {0};
		snprintf(c.stat_id, sizeof(c.stat_id), "%s", f->element[1]->str);
		snprintf(c.chger_id, sizeof(c.chger_id), "%s", f->element[3]->str);
		ck_assert_msg(!has_charger(cs1, n1, &c), "%s/%s is listed, yet gone", c.stat_id,
			      c.chger_id);
		ck_assert_msg(has_charger(cs0, n0, &c), "%s/%s was never there", c.stat_id,
			      c.chger_id);
		gone++;
	}
	freeReplyObject(x);
	ck_assert_int_eq(gone, removed);
	wait_log(&rt, "prune: removed", 2000);
	/* later complete sweeps find nothing more to remove */
	long long swept = hb(e.r, "sweep_ok_ms");
	wait_hb(e.r, "sweep_ok_ms", swept + 1, 20000);
	usleep(300000);
	ck_assert(rt_metric(&rt, "realtimed_chargers_removed_total") == removed);
	ck_assert_int_eq(redis_chargers(e.r), n1);
	rt_stop(&rt, 10000);
	free(cs0);
	free(cs1);
	env_stop(&e);
}
END_TEST

/* Keys matching a pattern. */
static long redis_keys(struct rds *r, const char *pattern)
{
	redisReply *x = CMD(r, "KEYS", pattern);
	long n = (long)x->elements;
	freeReplyObject(x);
	return n;
}

/* A Redis written by layouts 2 and 1 (rkeys.h: a hash per station, "_av"
 * its availability; layout 1's ev:av and ev:qk keys beside), whose
 * heartbeat claims a recent poll and sweep but names no layout: realtimed
 * rewrites every station as a layout-3 string from a sweep, and after it no
 * key of an older layout is left (a station hash nobody lists included). */
START_TEST(older_layout_station_keys_upgrade)
{
	struct env e;
	env_start(&e, 600, NULL);
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	long quick = 0;
	for (long i = 0; i < n; i++) {
		char key[RKEYS_KEY_MAX], value[64];
		rkeys_station(key, sizeof(key), cs[i].stat_id);
		rkeys_status_format(value, sizeof(value), cs[i].stat, cs[i].updated, cs[i].quick);
		freeReplyObject(CMD(e.r, "HSET", key, cs[i].chger_id, value, "_av", "0:1:0"));
		snprintf(key, sizeof(key), RKEYS_LEGACY_AVAIL_PREFIX "%s", cs[i].stat_id);
		freeReplyObject(CMD(e.r, "SET", key, "0:1:0"));
		if (cs[i].quick) {
			snprintf(key, sizeof(key), RKEYS_LEGACY_QUICK_PREFIX "%s", cs[i].stat_id);
			freeReplyObject(CMD(e.r, "SADD", key, cs[i].chger_id));
			quick++;
		}
	}
	ck_assert_int_gt(quick, 0);
	ck_assert_int_gt(redis_keys(e.r, RKEYS_LEGACY_AVAIL_PREFIX "*"), 0);
	/* a station hash (layout 2) no sweep lists: deleted too */
	freeReplyObject(CMD(e.r, "HSET", RKEYS_STATION_PREFIX "ZZ000000", "01", "2:1732500000"));
	char recent[32];
	snprintf(recent, sizeof(recent), "%ld", now_ms());
	freeReplyObject(CMD(e.r, "HSET", RKEYS_HEARTBEAT, "poll_ok_ms", recent, "sweep_ok_ms", "1"));
	char *extra[] = {"REALTIMED_SWEEP_INTERVAL=3600", NULL};
	struct rt rt;
	rt_start(&e, &rt, "a", extra);
	wait_hb(e.r, "sweep_ok_ms", 2, 30000);
	long deadline = now_ms() + 20000;
	while (redis_keys(e.r, RKEYS_LEGACY_AVAIL_PREFIX "*") +
		       redis_keys(e.r, RKEYS_LEGACY_QUICK_PREFIX "*") +
		       redis_keys(e.r, RKEYS_STATION_PREFIX "ZZ000000") >
	       0) {
		ck_assert_msg(now_ms() < deadline, "keys of an older layout still there");
		usleep(100000);
	}
	char why[512];
	long bad = mismatches(e.r, cs, n, why, sizeof(why));
	ck_assert_msg(bad == 0, "%ld of %ld chargers differ; first %s", bad, n, why);
	assert_availability(e.r, cs, n);
	ck_assert_int_eq(redis_chargers(e.r), n); /* every station key a well-formed string */
	char *layout = get_string(e.r, "HGET", RKEYS_HEARTBEAT, "layout", NULL);
	ck_assert_str_eq(layout, RKEYS_LIVE_LAYOUT);
	free(layout);
	/* nothing changed but the layout: no stream entry, no charger removed */
	redisReply *x = CMD(e.r, "XLEN", RKEYS_CHANGES);
	ck_assert_int_eq(x->integer, 0);
	freeReplyObject(x);
	ck_assert(rt_metric(&rt, "realtimed_chargers_removed_total") == 0);
	rt_stop(&rt, 10000);
	free(cs);
	env_stop(&e);
}
END_TEST

/* ---- restore ---- */

/* Counter i's counts in a slot: uses and out of service <= samples, and
 * one slot at `max` (saturated). */
static void test_counts(long i, int slot, unsigned max, unsigned *s, unsigned *u, unsigned *o)
{
	*s = (unsigned)((i * 31 + slot * 17) % 2000);
	if (i % 13 == 3 && slot == 5)
		*s = max;
	*u = *s * (unsigned)((i + slot) % 4) / 3;
	*o = *s * (unsigned)((i + 2 * slot) % 3) / 4;
}

/* Counter i's last-sample second: long past. */
static uint32_t test_mark(long i)
{
	return 1700000000u + (uint32_t)i;
}

/* Counter i's value in layout 2, as rkeys.h describes it. */
static void restore_value(long i, unsigned char *v)
{
	memset(v, 0, RKEYS_CONGESTION_VALUE_BYTES);
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
		unsigned s, u, o;
		test_counts(i, slot, RKEYS_CONGESTION_COUNTER_MAX, &s, &u, &o);
		rkeys_congestion_counter_put(v, slot, RKEYS_CG_SAMPLES, s);
		rkeys_congestion_counter_put(v, slot, RKEYS_CG_USES, u);
		rkeys_congestion_counter_put(v, slot, RKEYS_CG_OUT_OF_SERVICE, o);
	}
	rkeys_congestion_last_sample_put(v, test_mark(i));
}

/* Counter i's value in layout 1, byte by byte (u16 samples and uses per
 * slot, the marker at byte 672): no out of service, a saturated slot
 * beyond what layout 2 holds. */
static void layout1_value(long i, uint32_t mark, unsigned char *v)
{
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
		unsigned s, u, o;
		test_counts(i, slot, 65535, &s, &u, &o);
		v[4 * slot] = (unsigned char)(s >> 8);
		v[4 * slot + 1] = (unsigned char)s;
		v[4 * slot + 2] = (unsigned char)(u >> 8);
		v[4 * slot + 3] = (unsigned char)u;
	}
	v[672] = (unsigned char)(mark >> 24);
	v[673] = (unsigned char)(mark >> 16);
	v[674] = (unsigned char)(mark >> 8);
	v[675] = (unsigned char)mark;
}

static void set_value(struct rds *r, const char *key, const unsigned char *v, size_t len)
{
	const char *argv[] = {"SET", key, (const char *)v};
	const size_t lens[] = {3, strlen(key), len};
	char err[256];
	redisReply *reply = rds_command(r, 3, argv, lens, err, sizeof(err));
	ck_assert_msg(reply && reply->type == REDIS_REPLY_STATUS, "SET: %s", err);
	freeReplyObject(reply);
}

static unsigned sat_add(unsigned a, long long b)
{
	long long sum = (long long)a + b;
	return sum > RKEYS_CONGESTION_COUNTER_MAX ? RKEYS_CONGESTION_COUNTER_MAX : (unsigned)sum;
}

/* Counters of the 676-byte layout 1 (as realtimed wrote them before): the
 * first sample rewrites each in layout 2 in place, keeping its samples and
 * uses (saturated at 4,095) and its last-sample second, out of service from
 * 0; after K samples the clock's slot holds the old counts plus K samples,
 * K uses when charging and K out of service when down, and nothing else
 * moved. A charger whose marker is ahead of every tick is converted and
 * never counted: its marker survived the conversion. */
START_TEST(layout1_counters_convert_on_first_sample)
{
	struct env e;
	env_start(&e, 600, NULL);
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	ck_assert_int_eq(n, 600);
	const long ahead = 7; /* its marker is after every tick of this test */
	const uint32_t ahead_mark = 4000000000u;
	unsigned char v1[RKEYS_CONGESTION_V1_VALUE_BYTES];
	for (long i = 0; i < n; i++) {
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), cs[i].stat_id, cs[i].chger_id);
		layout1_value(i, i == ahead ? ahead_mark : test_mark(i), v1);
		set_value(e.r, key, v1, sizeof(v1));
	}
	long long k = sample_k_times(&e, 3), last = hb(e.r, "sample_done");
	time_t t0;
	ck_assert(kst_parse(CLOCK_TS, &t0));
	long saturated = 0, down = 0;
	for (long i = 0; i < n; i++) {
		int state = formula_state((uint64_t)i, t0);
		long long counted = i == ahead ? 0 : k;
		long long uses = state == 3 ? counted : 0;
		long long out = formula_out_of_service(state) ? counted : 0;
		down += out > 0;
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), cs[i].stat_id, cs[i].chger_id);
		size_t len = 0;
		unsigned char *v = (unsigned char *)get_string(e.r, "GET", key, NULL, &len);
		ck_assert_msg(v && len == RKEYS_CONGESTION_VALUE_BYTES, "%s: %zu bytes", key, len);
		for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
			unsigned s0, u0, o0;
			test_counts(i, slot, 65535, &s0, &u0, &o0);
			bool now = slot == CLOCK_SLOT;
			unsigned want_s = sat_add(s0, now ? counted : 0);
			unsigned want_u = sat_add(u0, now ? uses : 0);
			unsigned want_o = now ? (unsigned)out : 0;
			unsigned s = rkeys_congestion_counter(v, len, slot, RKEYS_CG_SAMPLES);
			unsigned u = rkeys_congestion_counter(v, len, slot, RKEYS_CG_USES);
			unsigned o = rkeys_congestion_counter(v, len, slot, RKEYS_CG_OUT_OF_SERVICE);
			ck_assert_msg(s == want_s && u == want_u && o == want_o,
				      "%s slot %d: %u %u %u, want %u %u %u", key, slot, s, u, o,
				      want_s, want_u, want_o);
			saturated += s0 > RKEYS_CONGESTION_COUNTER_MAX;
		}
		ck_assert_uint_eq(rkeys_congestion_last_sample(v, len),
				  i == ahead ? ahead_mark : (uint32_t)last);
		free(v);
	}
	ck_assert_int_gt(saturated, 0);
	ck_assert_int_gt(down, 0);
	free(cs);
	env_stop(&e);
}
END_TEST

static void ingestd_ok(const char *db, const struct env *e, const char *a1, const char *a2,
		       int want)
{
	char bin[4096], env_db[4200], env_redis[256];
	snprintf(bin, sizeof(bin), "%s", itest_bin("ingestd"));
	snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db);
	snprintf(env_redis, sizeof(env_redis), "REDIS_URL=%s", e->redis.url);
	char *argv[] = {bin, (char *)a1, (char *)a2, NULL};
	char *envv[] = {env_db, env_redis, "LOG_FORMAT=text", NULL};
	char *out = NULL;
	int rc = itest_run(argv, envv, 60000, &out);
	ck_assert_msg(rc == want, "ingestd %s %s: exit %d, want %d:\n%s", a1, a2 ? a2 : "", rc,
		      want, out ? out : "");
	free(out);
}

/* Redis lost: realtimed starting on it seeds the counters from the latest
 * PostgreSQL snapshot (through `ingestd congestion --restore`) before it
 * samples, so they equal the snapshot exactly; with no snapshot it samples
 * from empty; once restored (or sampled) it never restores again. */
START_TEST(empty_redis_restores_counters_from_the_snapshot)
{
	struct env e;
	env_start(&e, 600, NULL);
	char *db = itest_create_db("rtrestore");
	ingestd_ok(db, &e, "migrate", NULL, 0);
	char env_db[4200];
	snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db);
	char *extra[] = {env_db, "REALTIMED_RESTORE_INGESTD=auto", "REALTIMED_SAMPLE_INTERVAL=86400",
			 NULL};

	/* no snapshot yet: the restore finds none, sampling may begin */
	struct rt rt;
	rt_start(&e, &rt, "first", extra);
	wait_log(&rt, "no snapshot to restore: counters start empty (exit 66)", 30000);
	wait_hb(e.r, "restored_ms", 1, 10000);
	rt_stop(&rt, 10000);

	/* counters, a snapshot of them, then Redis loses everything */
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	ck_assert_int_eq(n, 600);
	unsigned char v[RKEYS_CONGESTION_VALUE_BYTES];
	for (long i = 0; i < n; i++) {
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), cs[i].stat_id, cs[i].chger_id);
		restore_value(i, v);
		set_value(e.r, key, v, sizeof(v));
	}
	ingestd_ok(db, &e, "congestion", NULL, 0);
	/* the snapshot holds the out-of-service counts, row by row and summed */
	long long want_down = 0;
	for (long i = 0; i < n; i++) {
		for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
			unsigned s0, u0, o0;
			test_counts(i, slot, RKEYS_CONGESTION_COUNTER_MAX, &s0, &u0, &o0);
			want_down += o0;
		}
	}
	ck_assert_int_gt(want_down, 0);
	PGconn *pg = itest_pg_connect(db);
	ck_assert_int_eq(itest_pg_long(pg, "SELECT sum(out_of_service) FROM congestion"), want_down);
	ck_assert_int_eq(itest_pg_long(pg, "SELECT out_of_service FROM congestion_snapshot "
					   "WHERE is_current"),
			 want_down);
	PQfinish(pg);
	freeReplyObject(CMD(e.r, "FLUSHALL"));

	rt_start(&e, &rt, "second", extra);
	wait_hb(e.r, "restored_ms", 1, 30000);
	wait_bootstrap(&e);
	wait_log(&rt, "restore: counters seeded from the latest snapshot (exit 0)", 10000);
	long differ = 0, first = -1;
	for (long i = 0; i < n; i++) {
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), cs[i].stat_id, cs[i].chger_id);
		size_t len = 0;
		char *got = get_string(e.r, "GET", key, NULL, &len);
		restore_value(i, v);
		if (!got || len != sizeof(v) || memcmp(got, v, sizeof(v)) != 0) {
			if (!differ++)
				first = i;
		}
		free(got);
	}
	ck_assert_msg(differ == 0, "%ld of %ld counters differ from the snapshot, first %ld",
		      differ, n, first);
	ck_assert_int_eq(hb(e.r, "samples"), 0); /* none counted on top */
	rt_stop(&rt, 10000);

	/* a restart on the same Redis does not restore again */
	rt_start(&e, &rt, "third", extra);
	wait_log(&rt, "lease: acquired", 30000);
	long deadline = now_ms() + 20000;
	char *body = NULL;
	while (rt_get(&rt, "/healthz", &body) != 200) { /* a poll written: decided long ago */
		ck_assert_msg(now_ms() < deadline, "never healthy: %s", body ? body : "");
		free(body);
		body = NULL;
		usleep(100000);
	}
	free(body);
	ck_assert(!rt_log_has(&rt, "restore: started"));
	rt_stop(&rt, 10000);
	free(cs);
	free(db);
	env_stop(&e);
}
END_TEST


Suite *test_suite(void)
{
	Suite *s = suite_create("realtimed");
	TCase *tc = tcase_create("state");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, bootstrap_equals_simulator);
	tcase_add_test(tc, deltas_applied_older_never_wins);
	tcase_add_test(tc, redis_restart_converges);
	tcase_add_test(tc, complete_sweep_removes_chargers_gone_upstream);
	tcase_add_test(tc, older_layout_station_keys_upgrade);
	suite_add_tcase(s, tc);
	tc = tcase_create("outage");
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, outage_beyond_the_window_sweeps_again);
	suite_add_tcase(s, tc);
	tc = tcase_create("congestion");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, congestion_counts_equal_formula);
	tcase_add_test(tc, layout1_counters_convert_on_first_sample);
	tcase_add_test(tc, empty_redis_restores_counters_from_the_snapshot);
	suite_add_tcase(s, tc);
	return s;
}
