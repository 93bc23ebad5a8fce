/* Shared by the realtimed integration tests (test_realtimed.c: status,
 * bootstrap, congestion, removal, restore; test_realtimed_lease.c: lease,
 * fencing, signals, operations): a private Redis and the upstream simulator
 * with a fixed clock, realtimed started with test-sized settings, the
 * simulator's usage formula recomputed, and the waits and checks they all
 * use. Static helpers: each test file uses some of them. */
#ifndef TEST_REALTIMED_ENV_H
#define TEST_REALTIMED_ENV_H

#pragma GCC diagnostic ignored "-Wunused-function"

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
#include "sim_reference.h"


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

/* Charger `slot`'s status code at t (sim_reference.h). */
static int formula_state(uint64_t slot, int64_t t)
{
	return sim_ref_state_at(SEED, slot, t);
}

/* Out of service, as issue #10's reliability line names it: in error (1),
 * suspended (4) or under inspection (5); written out here, apart from
 * model.h, so a wrong set in realtimed shows. */
static bool formula_out_of_service(int state)
{
	return state == 1 || state == 4 || state == 5;
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

/* Charger c's status in its station's value in Redis (rkeys.h), written
 * "stat:unix[:q]", or NULL. */
static char *stored_status(struct rds *r, const struct charger *c)
{
	char key[RKEYS_KEY_MAX];
	rkeys_station(key, sizeof(key), c->stat_id);
	size_t len = 0;
	char *value = get_string(r, "GET", key, NULL, &len), *out = NULL;
	struct rkeys_charger found;
	if (value && rkeys_live_find(value, len, c->chger_id, &found)) {
		out = malloc(64);
		rkeys_status_format(out, 64, found.stat, found.updated, found.quick);
	}
	free(value);
	return out;
}

/* A station value's head, its counts "standby:total:quick" (NULL: no value). */
static char *stored_availability(struct rds *r, const char *stat_id)
{
	char key[RKEYS_KEY_MAX];
	rkeys_station(key, sizeof(key), stat_id);
	char *value = get_string(r, "GET", key, NULL, NULL);
	if (value)
		value[strcspn(value, " ")] = '\0';
	return value;
}

/* Chargers whose stored status differs from the simulator's (the first
 * described in why). */
static long mismatches(struct rds *r, const struct charger *cs, long n, char *why, size_t whylen)
{
	long bad = 0;
	why[0] = '\0';
	for (long i = 0; i < n; i++) {
		char want[64];
		rkeys_status_format(want, sizeof(want), cs[i].stat, cs[i].updated, cs[i].quick);
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

/* Start an instance sampling every second, wait for at least k samples
 * after the bootstrap, stop it; returns the samples taken. */
static __attribute__((unused)) long long sample_k_times(struct env *e, long long k)
{
	struct rt rt;
	char *extra[] = {"REALTIMED_SAMPLE_INTERVAL=1", NULL};
	rt_start(e, &rt, "a", extra);
	wait_bootstrap(e);
	wait_hb(e->r, "samples", k, 20000);
	rt_stop(&rt, 10000);
	long long taken = hb(e->r, "samples");
	ck_assert_int_ge(taken, k);
	return taken;
}

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
		rkeys_station(key, sizeof(key), cs[i].stat_id);
		snprintf(want, sizeof(want), "%ld:%ld:%ld", standby, j - i, quick_standby);
		char *got = stored_availability(r, cs[i].stat_id);
		ck_assert_msg(got && strcmp(got, want) == 0, "%s: %s, want %s", key,
			      got ? got : "(none)", want);
		free(got);
		stations++;
		i = j;
	}
	return stations;
}

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

/* What check_counters found: chargers charging, and out of service. */
struct counted {
	long charging, down;
};

/* Check every charger's counters: `samples` in the clock's slot, uses =
 * samples when the formula says charging, out of service = samples when it
 * says in error, suspended or under inspection, every other counter zero,
 * the marker at the last tick, the value in layout 2. */
static struct counted check_counters(struct rds *r, const struct charger *cs, long n,
				     long long samples, long long last_tick)
{
	time_t t0;
	ck_assert(kst_parse(CLOCK_TS, &t0));
	struct counted got = {0, 0};
	for (long i = 0; i < n; i++) {
		int state = formula_state((uint64_t)i, t0);
		bool is_charging = state == 3, is_down = formula_out_of_service(state);
		/* the formula agrees with what the simulator serves */
		ck_assert_msg(state == cs[i].stat, "charger %ld: formula %d, stat %d", i, state,
			      cs[i].stat);
		got.charging += is_charging;
		got.down += is_down;
		char key[RKEYS_KEY_MAX];
		rkeys_congestion(key, sizeof(key), cs[i].stat_id, cs[i].chger_id);
		size_t len = 0;
		unsigned char *v = (unsigned char *)get_string(r, "GET", key, NULL, &len);
		ck_assert_msg(v != NULL, "%s missing", key);
		ck_assert_int_eq(len, RKEYS_CONGESTION_VALUE_BYTES);
		for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++) {
			unsigned s = rkeys_congestion_counter(v, len, slot, RKEYS_CG_SAMPLES);
			unsigned u = rkeys_congestion_counter(v, len, slot, RKEYS_CG_USES);
			unsigned o = rkeys_congestion_counter(v, len, slot, RKEYS_CG_OUT_OF_SERVICE);
			unsigned want_s = slot == CLOCK_SLOT ? (unsigned)samples : 0;
			unsigned want_u = slot == CLOCK_SLOT && is_charging ? (unsigned)samples : 0;
			unsigned want_o = slot == CLOCK_SLOT && is_down ? (unsigned)samples : 0;
			ck_assert_msg(s == want_s && u == want_u && o == want_o,
				      "%s slot %d: samples %u uses %u out of service %u, want %u %u %u",
				      key, slot, s, u, o, want_s, want_u, want_o);
		}
		ck_assert_int_eq(rkeys_congestion_last_sample(v, len), last_tick);
		free(v);
	}
	return got;
}

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

/* A leads (bootstrapped, 600 chargers), B stands by; both with extra.
 * Returns A's token (caller frees). */
static char *start_leader_and_standby(struct env *e, struct rt *a, struct rt *b,
				      char *const extra[])
{
	env_start(e, 600, NULL);
	rt_start(e, a, "a", extra);
	wait_bootstrap(e);
	char *token_a = get_string(e->r, "GET", RKEYS_LEASE, NULL, NULL);
	ck_assert_ptr_nonnull(token_a);
	rt_start(e, b, "b", extra);
	/* b stands by and writes nothing while a lives */
	wait_role(b, "standby", 5000);
	return token_a;
}

#endif
