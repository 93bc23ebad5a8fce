/* realtimed's lease, fencing, signals and operations against a private
 * Redis and the upstream simulator: kill -9 of the active instance hands
 * over to the standby within two lease periods with no sample counted
 * twice; a paused (SIGSTOP) leader writes nothing after the takeover; 100
 * kill -9 handovers never show two writers interleaved in the token log;
 * SIGTERM (once and twice) and SIGHUP; upstream failures shown in the
 * heartbeat; hostile Redis replies that stay bounded; bad settings. Statuses
 * and counters: test_realtimed.c. */
#include "test_realtimed_env.h"

/* ---- one active instance ---- */

START_TEST(standby_takes_over_after_kill9_without_double_counting)
{
	struct env e;
	struct rt a, b;
	char *extra[] = {"REALTIMED_SAMPLE_INTERVAL=1", NULL};
	char *token_a = start_leader_and_standby(&e, &a, &b, extra);
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
	struct rt a, b;
	char *extra[] = {"REALTIMED_SAMPLE_INTERVAL=1", NULL};
	char *token_a = start_leader_and_standby(&e, &a, &b, extra);
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
		/* never a's paused term again (tokens are per term: b, or a in a
		 * later term, may hold it under a new token on a busy machine) */
		ck_assert_msg(!lease || strcmp(lease, token_a) != 0, "a's old term holds the lease");
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

/* kill -9 of the active instance, again and again, with a standby always
 * waiting (a fresh instance replaces each one killed): the token log
 * (REALTIMED_TOKEN_LOG: every status write block appends its writer's
 * token in the same fenced MULTI) shows each writer's blocks together,
 * never a writer again once another wrote (tokens are drawn per lease
 * term, so a re-acquisition is a new token too). Each round's new leader
 * proves it writes: a status changed in the simulator after the kill
 * reaches Redis. 100 handovers; 20 under the sanitizers. */
#ifdef __SANITIZE_ADDRESS__
#define HANDOVERS 20
#else
#define HANDOVERS 100
#endif
#define HANDOVER_LEASE_MS 500

/* The instance whose /healthz says active (slot 0 or 1). */
static int active_slot(struct rt rts[2], int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	for (;;) {
		for (int i = 0; i < 2; i++) {
			char *body = NULL;
			bool active = rt_get(&rts[i], "/healthz", &body) == 200 &&
				      strstr(body, "\"role\":\"active\"");
			free(body);
			if (active)
				return i;
		}
		ck_assert_msg(now_ms() < deadline, "no instance became active");
		usleep(20000);
	}
}

START_TEST(kill9_handovers_never_interleave_writers)
{
	struct env e;
	/* more chargers than the table's first allocation: each new leader's
	 * load grows it (a pointer kept across that growth once crashed) */
	env_start(&e, 5000, NULL);
	long n;
	struct charger *cs = sim_chargers(&e.sim, &n);
	time_t t0;
	ck_assert(kst_parse(CLOCK_TS, &t0));
	char lease[40];
	snprintf(lease, sizeof(lease), "REALTIMED_LEASE_MS=%d", HANDOVER_LEASE_MS);
	char *extra[] = {"REALTIMED_SAMPLE_INTERVAL=86400", "REALTIMED_TOKEN_LOG=100000", lease,
			 NULL};
	struct rt rts[2];
	rt_start(&e, &rts[0], "h0", extra);
	wait_bootstrap(&e);
	rt_start(&e, &rts[1], "h1", extra);
	for (int round = 1; round <= HANDOVERS; round++) {
		int leader = active_slot(rts, 10000);
		itest_signal(&rts[leader].proc, SIGKILL);
		ck_assert_int_eq(itest_wait(&rts[leader].proc, 5000), 128 + SIGKILL);
		itest_stop(&rts[leader].proc);
		/* a change only the next leader can write, newer than any before */
		long i = round % n;
		int stat = cs[i].stat == 3 ? 5 : 3;
		cs[i].stat = stat;
		sim_admin(&e.sim, "/__admin/clock?advance=1");
		sim_set_status(&e.sim, i, stat);
		char name[16];
		snprintf(name, sizeof(name), "h%d", round + 1);
		rt_start(&e, &rts[leader], name, extra);
		char want[64];
		rkeys_status_format(want, sizeof(want), stat, t0 + round, cs[i].quick);
		wait_status(e.r, &cs[i], want, 10000);
	}

	/* the log, oldest first: once a token is followed by another, it never
	 * comes back */
	redisReply *log = CMD(e.r, "LRANGE", RKEYS_WRITERS, "0", "-1");
	ck_assert_int_eq(log->type, REDIS_REPLY_ARRAY);
	ck_assert_int_lt(log->elements, 100000); /* nothing trimmed away */
	const char **done = calloc(log->elements + 1, sizeof(*done));
	size_t ndone = 0;
	const char *cur = NULL;
	for (size_t k = 0; k < log->elements; k++) {
		const char *tok = log->element[k]->str;
		ck_assert_int_eq(strlen(tok), 32);
		if (cur && strcmp(cur, tok) == 0)
			continue;
		for (size_t d = 0; d < ndone; d++)
			ck_assert_msg(strcmp(done[d], tok) != 0,
				      "writer %.8s... wrote again at entry %zu after another writer",
				      tok, k);
		if (cur)
			done[ndone++] = cur;
		cur = tok;
	}
	/* every round's new leader wrote: one term at least per handover */
	ck_assert_int_ge(ndone + 1, HANDOVERS + 1);
	free(done);
	freeReplyObject(log);
	for (int k = 0; k < 2; k++)
		rt_stop(&rts[k], 10000);
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
	/* generous: under the sanitizers on a loaded machine a first attempt
	 * may time out (2 s) before it has read past the bound, and the server
	 * thread frees up only once its writes to it fail */
	wait_log(&rt, logged, 30000);
	/* it keeps trying, with backoff, and stays small */
	long deadline = now_ms() + 20000;
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


Suite *test_suite(void)
{
	Suite *s = suite_create("realtimed_lease");
	TCase *tc = tcase_create("lease");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, standby_takes_over_after_kill9_without_double_counting);
	tcase_add_test(tc, paused_leader_writes_nothing_after_takeover);
	suite_add_tcase(s, tc);
	tc = tcase_create("handovers");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, kill9_handovers_never_interleave_writers);
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
