/* realtimed against a private Redis and the upstream simulator: the
 * bootstrap sweep equals the simulator (statuses and availability, read
 * from the simulator independently), deltas are applied and an older status
 * never overwrites a newer one, congestion counters after K samples equal
 * the counts of the simulator's usage formula (recomputed here) exactly,
 * kill -9 of the active instance hands over to the standby within two lease
 * periods with no sample counted twice, a Redis restart converges, SIGTERM
 * (once and twice) and SIGHUP, upstream failures shown in the heartbeat,
 * /healthz and /metrics, and hostile Redis replies that stay bounded. */
#include "testmain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "itest.h"
#include "kst.h"
#include "rds.h"
#include "rkeys.h"

/* The simulator's fixed clock: Monday 2024-05-06 14:30 Korea time, so every
 * sample lands in slot 14 (Monday, 14 h). */
#define CLOCK_TS   "20240506143000"
#define CLOCK_SLOT 14
#define SEED	   20240605ULL
#define SEED_ARG   "20240605"
#define LEASE_MS   1500

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- the simulator ---- */

struct sim {
	struct itest_proc proc;
	int port;
};

static void sim_start(struct sim *s, long chargers, const char *faults)
{
	char *dir = itest_tmpdir("sim");
	char portfile[4096], bin[4096], count[32], fault_arg[512];
	snprintf(portfile, sizeof(portfile), "%s/port", dir);
	snprintf(bin, sizeof(bin), "%s", itest_bin("upstream-sim"));
	snprintf(count, sizeof(count), "%ld", chargers);
	char *argv[16] = {bin,	 "--port", "0",	     "--port-file", portfile,	       "--chargers",
			  count, "--seed", SEED_ARG, "--clock",	    "fixed:" CLOCK_TS, NULL};
	if (faults) {
		snprintf(fault_arg, sizeof(fault_arg), "%s", faults);
		argv[11] = "--faults";
		argv[12] = fault_arg;
		argv[13] = NULL;
	}
	ck_assert(itest_spawn(&s->proc, argv, NULL));
	s->port = itest_wait_port_file(portfile, 15000);
	ck_assert_int_gt(s->port, 0);
	free(dir);
}

static char *sim_get(const struct sim *s, const char *path)
{
	char url[8192], *body = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
	long code = itest_http_get(url, &body, NULL);
	ck_assert_msg(code == 200, "%s: HTTP %ld: %s", path, code, body ? body : "");
	return body;
}

static yajl_val sim_json(const struct sim *s, const char *path)
{
	char *body = sim_get(s, path), err[512];
	yajl_val v = yajl_tree_parse(body, err, sizeof(err));
	ck_assert_msg(v != NULL, "%s: %s", path, err);
	free(body);
	return v;
}

static const char *str_at(yajl_val v, const char *key)
{
	const char *path[] = {key, NULL};
	yajl_val x = yajl_tree_get(v, path, yajl_t_string);
	ck_assert_msg(x != NULL, "no string at %s", key);
	return YAJL_GET_STRING(x);
}

/* One charger as the simulator serves it, in index order. */
struct charger {
	char stat_id[16], chger_id[8];
	int stat;
	int64_t updated;
	bool quick;
};

/* Every charger of getChargerInfo (read page by page, as a client would). */
static struct charger *sim_chargers(const struct sim *s, long *count)
{
	struct charger *out = NULL;
	long n = 0, total = -1;
	for (long page = 1; total < 0 || n < total; page++) {
		char path[512];
		snprintf(path, sizeof(path),
			 "/B552584/EvCharger/getChargerInfo?serviceKey=test-key&pageNo=%ld"
			 "&numOfRows=9999&dataType=JSON",
			 page);
		yajl_val v = sim_json(s, path);
		const char *tp[] = {"totalCount", NULL};
		total = YAJL_GET_INTEGER(yajl_tree_get(v, tp, yajl_t_number));
		out = realloc(out, (size_t)total * sizeof(*out));
		const char *ip[] = {"items", "item", NULL};
		yajl_val items = yajl_tree_get(v, ip, yajl_t_array);
		ck_assert_ptr_nonnull(items);
		for (size_t i = 0; i < YAJL_GET_ARRAY(items)->len && n < total; i++) {
			yajl_val it = YAJL_GET_ARRAY(items)->values[i];
			struct charger *c = &out[n++];
			snprintf(c->stat_id, sizeof(c->stat_id), "%s", str_at(it, "statId"));
			snprintf(c->chger_id, sizeof(c->chger_id), "%s", str_at(it, "chgerId"));
			c->stat = atoi(str_at(it, "stat"));
			time_t t;
			ck_assert(kst_parse(str_at(it, "statUpdDt"), &t));
			c->updated = t;
			c->quick = atof(str_at(it, "output")) >= 50.0;
		}
		yajl_tree_free(v);
		ck_assert_int_lt(page, 100);
	}
	*count = n;
	return out;
}

/* Set one charger's status in the simulator (at its clock's now). */
static void sim_set_status(const struct sim *s, long index, int stat)
{
	char path[256];
	snprintf(path, sizeof(path), "/__admin/status?index=%ld&stat=%d", index, stat);
	free(sim_get(s, path));
}

static void sim_admin(const struct sim *s, const char *path_query)
{
	free(sim_get(s, path_query));
}

/* ---- the usage formula (the simulator's status model, recomputed) ---- */

static uint64_t mix(uint64_t z)
{
	z += 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t H(uint64_t tag, uint64_t a, uint64_t b)
{
	return mix(mix(mix(SEED ^ tag) ^ a) ^ b);
}

static const int usage_pm[3][24] = {
	{120, 100, 85,	75,  70,  75,  95,  130, 170, 200, 210, 220,
	 230, 235, 240, 245, 255, 290, 340, 380, 400, 360, 280, 180},
	{150, 120, 100, 85,  75,  75,  85,  110, 150, 210, 270, 310,
	 330, 340, 345, 340, 330, 320, 310, 300, 290, 260, 220, 180},
	{150, 125, 105, 90,  80,  75,  80,  100, 140, 190, 250, 290,
	 310, 320, 320, 315, 310, 320, 330, 330, 310, 270, 210, 160},
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Is charger `slot` charging at t? Its timeline is cut in 30-minute slots
 * shifted by a per-charger phase; a slot charges when its draw falls under
 * the usage curve of its Korea-time weekday class and hour. */
static bool formula_charging(uint64_t slot, int64_t t)
{
	int64_t phase = (int64_t)(H(16, slot, 0) % 1800);
	int64_t k = floor_div(t - phase, 1800);
	int64_t start = k * 1800 + phase, local = start + 32400;
	int wd = (int)((floor_div(local, 86400) + 4) % 7); /* 0 = Sunday */
	int hour = (int)((local - floor_div(local, 86400) * 86400) / 3600);
	int day_class = wd == 6 ? 1 : wd == 0 ? 2 : 0;
	uint64_t x = H(17, slot, (uint64_t)k) % 1000000;
	return x < (uint64_t)usage_pm[day_class][hour] * 1000;
}

/* ---- Redis ---- */

struct env {
	struct itest_store redis;
	struct rds *r;
	struct sim sim;
	char *dir;
};

static redisReply *cmdv(struct rds *r, int argc, const char **argv)
{
	char err[256];
	redisReply *reply = rds_command(r, argc, argv, NULL, err, sizeof(err));
	ck_assert_msg(reply != NULL, "%s: %s", argv[0], err);
	return reply;
}

#define CMD(r, ...)                                                                                \
	cmdv((r), (int)ARRAY_LEN(((const char *[]){__VA_ARGS__})), (const char *[]){__VA_ARGS__})

/* A heartbeat field as a number; 0 when absent. */
static long long hb(struct rds *r, const char *field)
{
	char err[256];
	const char *argv[] = {"HGET", RKEYS_HEARTBEAT, field};
	redisReply *reply = rds_command(r, 3, argv, NULL, err, sizeof(err));
	long long v = reply && reply->type == REDIS_REPLY_STRING ? atoll(reply->str) : 0;
	freeReplyObject(reply);
	return v;
}

static void wait_hb(struct rds *r, const char *field, long long at_least, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	long long v;
	while ((v = hb(r, field)) < at_least) {
		ck_assert_msg(now_ms() < deadline, "heartbeat %s stayed %lld, below %lld", field, v,
			      at_least);
		usleep(50000);
	}
}

static char *get_string(struct rds *r, const char *cmd, const char *key, const char *field,
			size_t *len)
{
	redisReply *reply = field ? CMD(r, cmd, key, field) : CMD(r, cmd, key);
	char *out = NULL;
	if (reply->type == REDIS_REPLY_STRING) {
		out = malloc(reply->len + 1);
		memcpy(out, reply->str, reply->len);
		out[reply->len] = '\0';
		if (len)
			*len = reply->len;
	}
	freeReplyObject(reply);
	return out;
}

/* Charger i's value in Redis, "stat:unix", or NULL. */
static char *stored_status(struct rds *r, const struct charger *c)
{
	char key[RKEYS_KEY_MAX];
	rkeys_station(key, sizeof(key), c->stat_id);
	return get_string(r, "HGET", key, c->chger_id, NULL);
}

/* Chargers whose stored status differs from the simulator's (the first
 * described in why). */
static long mismatches(struct rds *r, const struct charger *cs, long n, char *why, size_t whylen)
{
	long bad = 0;
	why[0] = '\0';
	for (long i = 0; i < n; i++) {
		char want[64];
		rkeys_status_format(want, sizeof(want), cs[i].stat, cs[i].updated);
		char *got = stored_status(r, &cs[i]);
		if (!got || strcmp(got, want) != 0) {
			if (!bad++)
				snprintf(why, whylen, "%s/%s: redis %s, simulator %s",
					 cs[i].stat_id, cs[i].chger_id, got ? got : "(none)", want);
		}
		free(got);
	}
	return bad;
}

static void env_start(struct env *e, long chargers, const char *faults)
{
	memset(e, 0, sizeof(*e));
	ck_assert(itest_redis_start(&e->redis));
	char err[256];
	e->r = rds_new(e->redis.url, 5000, err, sizeof(err));
	ck_assert_msg(e->r != NULL, "%s", err);
	sim_start(&e->sim, chargers, faults);
	e->dir = itest_tmpdir("realtimed");
}

static void env_reconnect(struct env *e)
{
	char err[256];
	rds_free(e->r);
	long deadline = now_ms() + 10000;
	while (!(e->r = rds_new(e->redis.url, 2000, err, sizeof(err)))) {
		ck_assert_msg(now_ms() < deadline, "%s", err);
		usleep(100000);
	}
}

/* ---- realtimed ---- */

struct rt {
	struct itest_proc proc;
	char port_file[4200];
	int port;
};

/* Start realtimed with test-sized settings; extra "K=V" entries win. */
static void rt_start_args(struct env *e, struct rt *rt, const char *name, char *const extra[],
			  const char *config_file, bool with_defaults)
{
	static char vars[24][4400];
	int n = 0;
	snprintf(rt->port_file, sizeof(rt->port_file), "%s/%s.port", e->dir, name);
	unlink(rt->port_file);
	snprintf(vars[n++], sizeof(vars[0]), "REDIS_URL=%s", e->redis.url);
	snprintf(vars[n++], sizeof(vars[0]), "UPSTREAM_URL=http://127.0.0.1:%d/B552584/EvCharger",
		 e->sim.port);
	snprintf(vars[n++], sizeof(vars[0]), "UPSTREAM_KEYS=test-key");
	snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_ADMIN_PORT=0");
	snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_PORT_FILE=%s", rt->port_file);
	snprintf(vars[n++], sizeof(vars[0]), "LOG_FORMAT=text");
	if (with_defaults) {
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_POLL_INTERVAL=1");
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_STATUS_PERIOD=1");
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_LEASE_MS=%d", LEASE_MS);
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_BACKOFF_MS=100");
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_BACKOFF_MAX_MS=500");
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_DRAIN_SECONDS=5");
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_REDIS_TIMEOUT_MS=2000");
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_CLOCK=fixed:" CLOCK_TS);
		/* no database here: the restore test turns it on */
		snprintf(vars[n++], sizeof(vars[0]), "REALTIMED_RESTORE_INGESTD=");
	}
	char *env[40];
	int k = 0;
	for (int i = 0; i < n; i++)
		env[k++] = vars[i];
	for (int i = 0; extra && extra[i]; i++)
		env[k++] = extra[i];
	env[k] = NULL;
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("realtimed"));
	char *argv[] = {bin, config_file ? "--config" : NULL, (char *)config_file, NULL};
	ck_assert(itest_spawn(&rt->proc, argv, env));
	rt->port = itest_wait_port_file(rt->port_file, 15000);
	ck_assert_msg(rt->port > 0, "realtimed wrote no port file");
}

static void rt_start(struct env *e, struct rt *rt, const char *name, char *const extra[])
{
	rt_start_args(e, rt, name, extra, NULL, true);
}

/* GET on the admin port: status; body (caller frees) via *body. */
static long rt_get(const struct rt *rt, const char *path, char **body)
{
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", rt->port, path);
	return itest_http_get(url, body, NULL);
}

static bool rt_log_has(const struct rt *rt, const char *text)
{
	char *out = itest_proc_output(&rt->proc);
	bool has = strstr(out, text) != NULL;
	free(out);
	return has;
}

static void wait_log(const struct rt *rt, const char *text, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	while (!rt_log_has(rt, text)) {
		if (now_ms() >= deadline) {
			char *out = itest_proc_output(&rt->proc);
			ck_abort_msg("log never said '%s':\n%s", text, out);
		}
		usleep(50000);
	}
}

/* The log must be free of sanitizer reports and assertion failures. */
static void check_clean_log(const struct rt *rt)
{
	char *out = itest_proc_output(&rt->proc);
	ck_assert_msg(!strstr(out, "Sanitizer") && !strstr(out, "runtime error") &&
			      !strstr(out, "Assertion"),
		      "%s", out);
	free(out);
}

/* SIGTERM; must exit 0 within limit_ms. Returns the time it took. */
static long rt_stop(struct rt *rt, int limit_ms)
{
	long t0 = now_ms();
	itest_signal(&rt->proc, SIGTERM);
	int rc = itest_wait(&rt->proc, limit_ms);
	long took = now_ms() - t0;
	char *out = itest_proc_output(&rt->proc);
	ck_assert_msg(rc == 0, "exit %d after %ld ms:\n%s", rc, took, out);
	free(out);
	check_clean_log(rt);
	itest_stop(&rt->proc);
	return took;
}

static void env_stop(struct env *e)
{
	itest_stop(&e->sim.proc);
	rds_free(e->r);
	itest_store_stop(&e->redis, "redis");
	free(e->dir);
}

/* Bootstrapped: the sweep is written and polling has begun. */
static void wait_bootstrap(struct env *e)
{
	wait_hb(e->r, "sweep_ok_ms", 1, 30000);
}

/* ---- bootstrap ---- */

/* Every station's availability equals the simulator's chargers (cs, in
 * slot order: a station's chargers are adjacent). Returns the stations. */
static long assert_availability(struct rds *r, const struct charger *cs, long n)
{
	long stations = 0;
	for (long i = 0; i < n;) {
		long j = i, standby = 0, quick_standby = 0;
		for (; j < n && strcmp(cs[j].stat_id, cs[i].stat_id) == 0; j++) {
			standby += cs[j].stat == 2;
			quick_standby += cs[j].stat == 2 && cs[j].quick;
		}
		char key[RKEYS_KEY_MAX], want[64];
		rkeys_avail(key, sizeof(key), cs[i].stat_id);
		snprintf(want, sizeof(want), "%ld:%ld:%ld", standby, j - i, quick_standby);
		char *got = get_string(r, "GET", key, NULL, NULL);
		ck_assert_msg(got && strcmp(got, want) == 0, "%s: %s, want %s", key,
			      got ? got : "(none)", want);
		free(got);
		stations++;
		i = j;
	}
	return stations;
}

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

/* Wait until charger c's stored value is want. */
static void wait_status(struct rds *r, const struct charger *c, const char *want, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	for (;;) {
		char *got = stored_status(r, c);
		bool ok = got && strcmp(got, want) == 0;
		if (!ok && now_ms() >= deadline)
			ck_abort_msg("%s/%s: %s, never %s", c->stat_id, c->chger_id,
				     got ? got : "(none)", want);
		free(got);
		if (ok)
			return;
		usleep(50000);
	}
}

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
	rkeys_status_format(want, sizeof(want), new_stat, t0);
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
	rkeys_avail(key, sizeof(key), cs[10].stat_id);
	char *av = get_string(e.r, "GET", key, NULL, NULL);
	int standby, total, quick;
	ck_assert(av && rkeys_avail_parse(av, &standby, &total, &quick));
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
	rkeys_status_format(want, sizeof(want), 3, t0 + 120);
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
	rkeys_status_format(newer, sizeof(newer), 4, t0 + 100000);
	freeReplyObject(CMD(e.r, "HSET", key, cs[12].chger_id, newer));
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

/* Check every charger's counters: `samples` in the clock's slot, uses =
 * samples when the formula says charging, every other slot zero, the
 * marker at the last tick. Returns the chargers counted as charging. */
static long check_counters(struct rds *r, const struct charger *cs, long n, long long samples,
			   long long last_tick)
{
	time_t t0;
	ck_assert(kst_parse(CLOCK_TS, &t0));
	long charging = 0;
	for (long i = 0; i < n; i++) {
		bool is_charging = formula_charging((uint64_t)i, t0);
		/* the formula agrees with what the simulator serves */
		ck_assert_msg(is_charging == (cs[i].stat == 3), "charger %ld: formula %d, stat %d",
			      i, is_charging, cs[i].stat);
		charging += is_charging;
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), cs[i].stat_id, cs[i].chger_id);
		size_t len = 0;
		unsigned char *v = (unsigned char *)get_string(r, "GET", key, NULL, &len);
		ck_assert_msg(v != NULL, "%s missing", key);
		ck_assert_int_eq(len, RKEYS_CONGESTION_VALUE_BYTES);
		for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
			unsigned s = (unsigned)v[4 * slot] << 8 | v[4 * slot + 1];
			unsigned u = (unsigned)v[4 * slot + 2] << 8 | v[4 * slot + 3];
			unsigned want_s = slot == CLOCK_SLOT ? (unsigned)samples : 0;
			unsigned want_u = slot == CLOCK_SLOT && is_charging ? (unsigned)samples : 0;
			ck_assert_msg(s == want_s && u == want_u,
				      "%s slot %d: samples %u uses %u, want %u %u", key, slot, s, u,
				      want_s, want_u);
		}
		const unsigned char *mk = v + RKEYS_CONGESTION_BYTES;
		long long mark = (long long)mk[0] << 24 | mk[1] << 16 | mk[2] << 8 | mk[3];
		ck_assert_int_eq(mark, last_tick);
		free(v);
	}
	return charging;
}

START_TEST(congestion_counts_equal_formula)
{
	struct env e;
	env_start(&e, 600, NULL);
	struct rt rt;
	char *extra[] = {"REALTIMED_SAMPLE_INTERVAL=1", NULL};
	rt_start(&e, &rt, "a", extra);
	wait_bootstrap(&e);
	wait_hb(e.r, "samples", 4, 20000);
	rt_stop(&rt, 10000);
	long long k = hb(e.r, "samples");
	ck_assert_int_ge(k, 4);
	ck_assert_int_eq(hb(e.r, "sample_done"), hb(e.r, "sample_started"));
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	long charging = check_counters(e.r, cs, n, k, hb(e.r, "sample_done"));
	/* Monday 14 h: about 23.5% charge */
	ck_assert_int_gt(charging, n / 10);
	ck_assert_int_lt(charging, n / 2);
	free(cs);
	env_stop(&e);
}
END_TEST

/* Wait until rt's /healthz answers 200 with this role. */
static void wait_role(const struct rt *rt, const char *role, int timeout_ms)
{
	char want[64], *body = NULL;
	snprintf(want, sizeof(want), "\"role\":\"%s\"", role);
	long deadline = now_ms() + timeout_ms;
	while (rt_get(rt, "/healthz", &body) != 200 || !strstr(body, want)) {
		ck_assert_msg(now_ms() < deadline, "not %s: %s", role, body ? body : "");
		free(body);
		body = NULL;
		usleep(50000);
	}
	free(body);
}

START_TEST(standby_takes_over_after_kill9_without_double_counting)
{
	struct env e;
	env_start(&e, 600, NULL);
	struct rt a, b;
	char *extra[] = {"REALTIMED_SAMPLE_INTERVAL=1", NULL};
	rt_start(&e, &a, "a", extra);
	wait_bootstrap(&e);
	char *token_a = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
	ck_assert_ptr_nonnull(token_a);
	rt_start(&e, &b, "b", extra);
	/* b stands by and writes nothing while a lives */
	wait_role(&b, "standby", 5000);
	char *body = NULL;
	wait_hb(e.r, "samples", 3, 20000);
	char *still = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
	ck_assert_str_eq(still, token_a);
	free(still);

	/* kill -9 a, mid-sample or not */
	itest_signal(&a.proc, SIGKILL);
	long killed = now_ms();
	ck_assert_int_eq(itest_wait(&a.proc, 5000), 128 + SIGKILL);
	long took = -1;
	while (now_ms() - killed < 6 * LEASE_MS) {
		char *token = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
		bool other = token && strcmp(token, token_a) != 0;
		free(token);
		if (other) {
			took = now_ms() - killed;
			break;
		}
		usleep(20000);
	}
	ck_assert_msg(took >= 0, "b never took the lease");
	ck_assert_msg(took <= 2 * LEASE_MS, "takeover took %ld ms, over two lease periods (%d ms)",
		      took, 2 * LEASE_MS);
	long long before = hb(e.r, "samples");
	wait_hb(e.r, "samples", before + 3, 20000);
	ck_assert(rt_get(&b, "/healthz", &body) == 200 && strstr(body, "\"role\":\"active\""));
	free(body);
	rt_stop(&b, 10000);
	itest_stop(&a.proc);

	/* every charger counted exactly once per finished sample */
	long long k = hb(e.r, "samples");
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	check_counters(e.r, cs, n, k, hb(e.r, "sample_done"));
	free(cs);
	free(token_a);
	env_stop(&e);
}
END_TEST

/* SIGSTOP the active instance for two lease periods: the standby takes
 * over; after SIGCONT none of the paused leader's writes is applied (its
 * token never reappears in the lease or the heartbeat, it stands by, and
 * every charger is counted exactly once per finished sample). */
START_TEST(paused_leader_writes_nothing_after_takeover)
{
	struct env e;
	env_start(&e, 600, NULL);
	struct rt a, b;
	char *extra[] = {"REALTIMED_SAMPLE_INTERVAL=1", NULL};
	rt_start(&e, &a, "a", extra);
	wait_bootstrap(&e);
	char *token_a = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
	ck_assert_ptr_nonnull(token_a);
	rt_start(&e, &b, "b", extra);
	wait_role(&b, "standby", 5000);
	wait_hb(e.r, "samples", 2, 20000);

	itest_signal(&a.proc, SIGSTOP);
	long stopped = now_ms();
	char *token_b = NULL;
	while (!token_b) {
		ck_assert_msg(now_ms() - stopped < 2 * LEASE_MS + 1000, "b never took the lease");
		char *token = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
		if (token && strcmp(token, token_a) != 0)
			token_b = token;
		else
			free(token);
		usleep(20000);
	}
	long long before = hb(e.r, "samples");
	wait_hb(e.r, "samples", before + 1, 20000); /* b writes */
	while (now_ms() - stopped < 2 * LEASE_MS)
		usleep(20000);

	/* a wakes with its timers overdue and writes queued: all fenced */
	itest_signal(&a.proc, SIGCONT);
	long woke = now_ms();
	while (now_ms() - woke < 3000) {
		char *lease = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
		char *instance = get_string(e.r, "HGET", RKEYS_HEARTBEAT, "instance", NULL);
		ck_assert_msg(lease && strcmp(lease, token_b) == 0, "lease %s", lease ? lease : "-");
		ck_assert_msg(!instance || strcmp(instance, token_a) != 0,
			      "a's heartbeat applied after the takeover");
		free(lease);
		free(instance);
		usleep(20000);
	}
	wait_log(&a, "lease: lost", 5000);
	wait_role(&a, "standby", 5000);
	before = hb(e.r, "samples");
	wait_hb(e.r, "samples", before + 2, 20000);
	rt_stop(&b, 10000);
	rt_stop(&a, 10000);

	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	check_counters(e.r, cs, n, hb(e.r, "samples"), hb(e.r, "sample_done"));
	free(cs);
	free(token_a);
	free(token_b);
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

/* ---- signals ---- */

START_TEST(sigterm_exits_zero_and_releases_the_lease)
{
	struct env e;
	env_start(&e, 500, NULL);
	struct rt rt, b;
	rt_start(&e, &rt, "a", NULL);
	wait_bootstrap(&e);
	char *lease = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
	ck_assert_ptr_nonnull(lease);

	/* a standby's SIGTERM: nothing to release, it leaves the lease alone */
	rt_start(&e, &b, "b", NULL);
	wait_log(&b, "redis", 5000);
	ck_assert_int_lt(rt_stop(&b, 7000), 2000);
	char *still = get_string(e.r, "GET", RKEYS_LEASE, NULL, NULL);
	ck_assert_str_eq(still, lease);
	free(still);
	free(lease);

	/* documented: REALTIMED_DRAIN_SECONDS (5 here) plus the release (2 s at most) */
	long took = rt_stop(&rt, 7000);
	ck_assert_int_lt(took, 7000);
	redisReply *x = CMD(e.r, "EXISTS", RKEYS_LEASE);
	ck_assert_int_eq(x->integer, 0);
	freeReplyObject(x);
	env_stop(&e);
}
END_TEST

static pid_t redis_pid(const struct env *e)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/redis/redis.pid", e->redis.dir);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	int pid = 0;
	ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
	fclose(f);
	return (pid_t)pid;
}

START_TEST(second_sigterm_exits_at_once)
{
	struct env e;
	env_start(&e, 500, NULL);
	struct rt rt;
	rt_start(&e, &rt, "a", NULL);
	wait_bootstrap(&e);
	/* a frozen Redis: the release would wait for its answer */
	pid_t rp = redis_pid(&e);
	kill(rp, SIGSTOP);
	itest_signal(&rt.proc, SIGTERM);
	usleep(300000);
	ck_assert_int_eq(itest_wait(&rt.proc, 0), -1); /* still draining */
	long t0 = now_ms();
	itest_signal(&rt.proc, SIGTERM);
	int rc = itest_wait(&rt.proc, 3000);
	kill(rp, SIGCONT);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_lt(now_ms() - t0, 1500);
	ck_assert(rt_log_has(&rt, "second signal"));
	check_clean_log(&rt);
	itest_stop(&rt.proc);
	env_stop(&e);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(sighup_reloads_or_keeps_the_old_config)
{
	struct env e;
	env_start(&e, 500, NULL);
	char conf[4200];
	snprintf(conf, sizeof(conf), "%s/realtimed.env", e.dir);
	static const char base[] = "REALTIMED_POLL_INTERVAL=1\nREALTIMED_STATUS_PERIOD=1\n"
				   "REALTIMED_LEASE_MS=1500\nREALTIMED_CLOCK=fixed:" CLOCK_TS "\n";
	write_file(conf, base);
	struct rt rt;
	rt_start_args(&e, &rt, "a", NULL, conf, false);
	wait_bootstrap(&e);

	write_file(conf, "REALTIMED_POLL_INTERVAL=2\nREALTIMED_STATUS_PERIOD=1\n"
			 "REALTIMED_SAMPLE_INTERVAL=30\nREALTIMED_LEASE_MS=2000\n"
			 "REALTIMED_CLOCK=fixed:" CLOCK_TS "\n");
	itest_signal(&rt.proc, SIGHUP);
	wait_log(&rt,
		 "configuration reloaded (poll every 2 s, status window 1 min, samples every 30 s)",
		 5000);
	ck_assert(rt_log_has(
		&rt, "reload: REALTIMED_LEASE_MS changed; it takes effect at the next restart"));

	/* a bad value: logged with its key, the running configuration kept */
	write_file(conf, "REALTIMED_POLL_INTERVAL=abc\n");
	itest_signal(&rt.proc, SIGHUP);
	wait_log(&rt, "reload: REALTIMED_POLL_INTERVAL: 'abc' is not an integer", 5000);
	ck_assert(rt_log_has(&rt, "keeping the running configuration"));
	/* a value that breaks a rule across keys: the same */
	write_file(conf, "REALTIMED_POLL_INTERVAL=600\nREALTIMED_STATUS_PERIOD=1\n");
	itest_signal(&rt.proc, SIGHUP);
	wait_log(&rt, "reload: REALTIMED_STATUS_PERIOD: 1 minutes does not cover", 5000);
	ck_assert_int_eq(itest_wait(&rt.proc, 0), -1);
	/* still polling every 2 s */
	long long before = hb(e.r, "poll_ok_ms");
	wait_hb(e.r, "poll_ok_ms", before + 1, 6000);
	char *body = NULL;
	ck_assert_int_eq(rt_get(&rt, "/healthz", &body), 200);
	free(body);
	rt_stop(&rt, 10000);
	env_stop(&e);
}
END_TEST

/* ---- upstream failures ---- */

START_TEST(upstream_failures_show_staleness)
{
	struct env e;
	env_start(&e, 500, NULL);
	struct rt rt;
	char *extra[] = {"REALTIMED_RETRIES=1", NULL};
	rt_start(&e, &rt, "a", extra);
	wait_bootstrap(&e);
	wait_hb(e.r, "poll_ok_ms", hb(e.r, "sweep_ok_ms") + 1, 5000);

	sim_admin(&e.sim, "/__admin/faults?http5xx=1");
	long long failed_from = hb(e.r, "poll_ok_ms");
	wait_hb(e.r, "poll_err_ms", 1, 10000);
	char *why = get_string(e.r, "HGET", RKEYS_HEARTBEAT, "poll_error", NULL);
	ck_assert_msg(why && strstr(why, "page 1"), "poll_error: %s", why ? why : "(none)");
	free(why);
	usleep(1500000);
	/* no complete poll while the upstream fails: the heartbeat ages */
	ck_assert_int_le(hb(e.r, "poll_ok_ms"), failed_from);
	ck_assert(rt_log_has(&rt, "retrying"));

	sim_admin(&e.sim, "/__admin/faults?http5xx=off");
	wait_hb(e.r, "poll_ok_ms", failed_from + 1, 10000);
	rt_stop(&rt, 10000);
	env_stop(&e);
}
END_TEST

/* ---- hostile Redis ---- */

struct hostile {
	int listen_fd;
	int port;
	const char *reply; /* sent on every connection */
	size_t junk_bytes; /* then this many bytes of junk */
	volatile int connections;
};

static void *hostile_serve(void *arg)
{
	struct hostile *h = arg;
	for (;;) {
		int fd = accept(h->listen_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		h->connections++;
		char in[4096];
		(void)read(fd, in, sizeof(in));
		(void)write(fd, h->reply, strlen(h->reply));
		static char junk[65536];
		memset(junk, 'x', sizeof(junk));
		for (size_t sent = 0; sent < h->junk_bytes;) {
			ssize_t w = write(fd, junk, sizeof(junk));
			if (w <= 0)
				break;
			sent += (size_t)w;
		}
		close(fd);
	}
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

static void hostile_case(const char *reply, size_t junk, const char *logged)
{
	struct env e;
	env_start(&e, 100, NULL);
	struct hostile h = {.reply = reply, .junk_bytes = junk};
	h.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(h.listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(h.listen_fd, 16), 0);
	socklen_t len = sizeof(sin);
	getsockname(h.listen_fd, (struct sockaddr *)&sin, &len);
	h.port = ntohs(sin.sin_port);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, hostile_serve, &h), 0);
	char url[128];
	snprintf(url, sizeof(url), "REDIS_URL=redis://127.0.0.1:%d/0", h.port);
	char *extra[] = {url, NULL};
	struct rt rt;
	rt_start(&e, &rt, "a", extra);
	wait_log(&rt, logged, 10000);
	/* it keeps trying, with backoff, and stays small */
	long deadline = now_ms() + 10000;
	while (h.connections < 2) {
		ck_assert_msg(now_ms() < deadline, "no reconnect");
		usleep(50000);
	}
	long kb = rss_kb(rt.proc.pid);
	ck_assert_msg(kb > 0 && kb < 400 * 1024, "RSS %ld kB", kb);
	char *body = NULL;
	ck_assert_int_eq(rt_get(&rt, "/healthz", &body), 503);
	ck_assert_ptr_nonnull(strstr(body, "Redis is unreachable"));
	free(body);
	rt_stop(&rt, 10000);
	shutdown(h.listen_fd, SHUT_RDWR);
	close(h.listen_fd);
	pthread_join(th, NULL);
	env_stop(&e);
}

START_TEST(hostile_array_reply_is_refused)
{
	hostile_case("*2147483647\r\n", 0, "reply array of 2147483647 elements (limit 1000000)");
}
END_TEST

START_TEST(hostile_bulk_reply_is_refused)
{
	hostile_case("$2000000000\r\n", 64u << 20, "reply bytes buffered unparsed");
}
END_TEST

/* ---- settings ---- */

START_TEST(bad_settings_exit_78)
{
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("realtimed"));
	char *argv[] = {bin, NULL};
	char *out = NULL;
	char *env1[] = {"REALTIMED_POLL_INTERVAL=60", "REALTIMED_STATUS_PERIOD=1", NULL};
	ck_assert_int_eq(itest_run(argv, env1, 10000, &out), 78);
	ck_assert_ptr_nonnull(strstr(out, "REALTIMED_STATUS_PERIOD: 1 minutes does not cover"));
	free(out);
	char *env2[] = {"REALTIMED_CLOCK=fixed:2024", NULL};
	ck_assert_int_eq(itest_run(argv, env2, 10000, &out), 78);
	ck_assert_ptr_nonnull(strstr(out, "REALTIMED_CLOCK"));
	free(out);
	char *env3[] = {"UPSTREAM_KEYS=", "REALTIMED_ADMIN_PORT=0", NULL};
	ck_assert_int_eq(itest_run(argv, env3, 10000, &out), 78);
	ck_assert_ptr_nonnull(strstr(out, "UPSTREAM_KEYS"));
	free(out);
}
END_TEST

/* ---- chargers removed upstream ---- */

/* Charger fields over every station hash in Redis. */
static long redis_chargers(struct rds *r)
{
	redisReply *x = CMD(r, "EVAL",
			    "local n = 0 for _, k in ipairs(redis.call('KEYS', 'ev:st:*')) do "
			    "n = n + redis.call('HLEN', k) end return n",
			    "0");
	long n = (long)x->integer;
	freeReplyObject(x);
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
 * them from the station hashes, their availability recomputed, emptied
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
			rkeys_avail(key, sizeof(key), cs0[i].stat_id);
			char *av = get_string(e.r, "GET", key, NULL, NULL);
			ck_assert_msg(!av, "%s left behind: %s", key, av);
		}
	}
	assert_availability(e.r, cs1, n1);
	ck_assert(rt_metric(&rt, "realtimed_chargers_removed_total") == removed);
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

/* ---- restore ---- */

/* Counter i's value, byte by byte as rkeys.h describes it (uses <= samples,
 * one saturated slot, a marker). */
static void restore_value(long i, unsigned char *v)
{
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
		unsigned s = (unsigned)((i * 31 + slot * 17) % 2000);
		if (i % 13 == 3 && slot == 5)
			s = 65535;
		unsigned u = s * (unsigned)((i + slot) % 4) / 3;
		v[4 * slot] = (unsigned char)(s >> 8);
		v[4 * slot + 1] = (unsigned char)s;
		v[4 * slot + 2] = (unsigned char)(u >> 8);
		v[4 * slot + 3] = (unsigned char)u;
	}
	uint32_t m = 1700000000u + (uint32_t)i;
	v[672] = (unsigned char)(m >> 24);
	v[673] = (unsigned char)(m >> 16);
	v[674] = (unsigned char)(m >> 8);
	v[675] = (unsigned char)m;
}

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
		int len = rkeys_congestion(key, sizeof(key), cs[i].stat_id, cs[i].chger_id);
		restore_value(i, v);
		const char *argv[] = {"SET", key, (const char *)v};
		const size_t lens[] = {3, (size_t)len, sizeof(v)};
		char err[256];
		redisReply *reply = rds_command(e.r, 3, argv, lens, err, sizeof(err));
		ck_assert_msg(reply && reply->type == REDIS_REPLY_STATUS, "SET: %s", err);
		freeReplyObject(reply);
	}
	ingestd_ok(db, &e, "congestion", NULL, 0);
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
	suite_add_tcase(s, tc);
	tc = tcase_create("outage");
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, outage_beyond_the_window_sweeps_again);
	suite_add_tcase(s, tc);
	tc = tcase_create("congestion");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, congestion_counts_equal_formula);
	tcase_add_test(tc, standby_takes_over_after_kill9_without_double_counting);
	tcase_add_test(tc, paused_leader_writes_nothing_after_takeover);
	tcase_add_test(tc, empty_redis_restores_counters_from_the_snapshot);
	suite_add_tcase(s, tc);
	tc = tcase_create("operations");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, sigterm_exits_zero_and_releases_the_lease);
	tcase_add_test(tc, second_sigterm_exits_at_once);
	tcase_add_test(tc, sighup_reloads_or_keeps_the_old_config);
	tcase_add_test(tc, upstream_failures_show_staleness);
	tcase_add_test(tc, hostile_array_reply_is_refused);
	tcase_add_test(tc, hostile_bulk_reply_is_refused);
	tcase_add_test(tc, bad_settings_exit_78);
	suite_add_tcase(s, tc);
	return s;
}
