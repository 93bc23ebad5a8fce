/* GET /stations/changes against real PostgreSQL and Redis: charger status
 * changes written to the stream as realtimed writes them, and changes made
 * in the simulator that realtimed polls into Redis, reach an event stream
 * (SSE) client and a long-poll client in order; a reconnect with
 * the last cursor (since=, or Last-Event-ID) misses nothing and repeats
 * nothing; heartbeats keep a stream open past every request timeout; a
 * cursor older than the history kept gets 410 with the oldest cursor; the
 * client limit answers 503; master-data runs show up as station events;
 * /metrics counts open clients, changes written, refusals and push delays. */
#include "testmain.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "model.h"
#include "test_apid.h"

struct fixture {
	struct itest_store redis;
	struct apid_env e;
};

/* A private Redis and a database of its own. */
static void stores(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	ck_assert(itest_redis_start(&f->redis));
	apid_db_setup(&f->e, NULL);
	apid_redis_setup(&f->e, f->redis.url);
}

static void start(struct fixture *f, char *const *extra)
{
	stores(f);
	apid_station(f->e.pg, "ME000001", "Feed", "서울특별시 중구 세종대로 1", 37.56, 126.97, "ME",
		     "환경부", "환경부", "11");
	apid_charger(f->e.pg, "ME000001", "01", "04", "50", 2, 0);
	apid_charger(f->e.pg, "ME000001", "02", "02", "7", 2, 0);
	char *env[16] = {"APID_FEED_HEARTBEAT_SECONDS=0.3", "APID_REQUEST_TIMEOUT_SECONDS=1",
			 "APID_KEEPALIVE_TIMEOUT_SECONDS=1", "APID_SEND_TIMEOUT_SECONDS=1"};
	int n = 4;
	for (size_t i = 0; extra && extra[i] && n < 15; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	apid_start(&f->e, env, true);
}

static void stop(struct fixture *f)
{
	apid_teardown(&f->e);
	itest_store_stop(&f->redis, "redis");
}

/* ---- long-poll ---- */

/* GET /stations/changes?...; the answer's changes appended to `seen` as
 * "stationId/chargerId=STATE" lines; returns the new cursor (caller frees). */
static char *poll_changes(struct apid_env *e, const char *query, char *seen, size_t seenlen,
			  size_t *count)
{
	char *path = apid_fmt("/stations/changes?%s", query);
	yajl_val v = apid_json(e, path, 200);
	free(path);
	yajl_val list = jkey(v, "changes");
	ck_assert(YAJL_IS_ARRAY(list));
	for (size_t i = 0; i < jlen(list); i++) {
		yajl_val c = jat(list, i);
		char line[160];
		if (strcmp(jstr(c, "type"), "status") == 0)
			snprintf(line, sizeof(line), "%s/%s=%s\n", jstr(c, "stationId"),
				 jstr(c, "chargerId"), jstr(c, "state"));
		else
			snprintf(line, sizeof(line), "%s:%s\n", jstr(c, "change"),
				 jstr(c, "stationId"));
		strncat(seen, line, seenlen - strlen(seen) - 1);
		/* each change carries the cursor after it; the last is the answer's */
		if (i + 1 == jlen(list))
			ck_assert_str_eq(jstr(c, "cursor"), jstr(v, "cursor"));
	}
	*count += jlen(list);
	char *cursor = strdup(jstr(v, "cursor"));
	yajl_tree_free(v);
	return cursor;
}

struct waiter {
	struct apid_env *e;
	char query[256];
	char seen[1024];
	size_t count;
	char *cursor;
	long ms;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	long t0 = apid_now_ms();
	w->cursor = poll_changes(w->e, w->query, w->seen, sizeof(w->seen), &w->count);
	w->ms = apid_now_ms() - t0;
	return NULL;
}

/* ---- event streams (raw HTTP/1.0: the body is the event text) ---- */

struct sse {
	int fd;
	char buf[65536];
	size_t len;
};

static void sse_open(struct sse *s, int port, const char *query, const char *last_id)
{
	memset(s, 0, sizeof(*s));
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(s->fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	char *req = apid_fmt("GET /stations/changes%s%s HTTP/1.0\r\nHost: t\r\n"
			     "Accept: text/event-stream\r\n%s%s%s\r\n",
			     query[0] ? "?" : "", query, last_id ? "Last-Event-ID: " : "",
			     last_id ? last_id : "", last_id ? "\r\n" : "");
	ck_assert_int_eq(send(s->fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	free(req);
}

/* Read until `text` appears after offset `from` (or the timeout); true
 * when it did. False also when the server closed. */
static bool sse_wait(struct sse *s, size_t from, const char *text, int timeout_ms)
{
	long deadline = apid_now_ms() + timeout_ms;
	for (;;) {
		s->buf[s->len] = '\0';
		if (s->len > from && strstr(s->buf + from, text))
			return true;
		long left = deadline - apid_now_ms();
		if (left <= 0 || s->len + 1 >= sizeof(s->buf))
			return false;
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = recv(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len, 0);
		if (n <= 0)
			return false;
		s->len += (size_t)n;
	}
}

static void sse_close(struct sse *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* The stream's status events from `from` on, as poll_changes lists them,
 * and the id of the last one into last_id. */
static size_t sse_events(struct sse *s, size_t from, char *seen, size_t seenlen, char *last_id,
			 size_t idlen)
{
	size_t n = 0;
	seen[0] = '\0';
	const char *p = s->buf + from;
	while ((p = strstr(p, "id: ")) != NULL) {
		const char *eol = strchr(p, '\n');
		const char *data = strstr(p, "\ndata: ");
		const char *end = data ? strstr(data, "\n\n") : NULL;
		if (!eol || !data || !end)
			break;
		snprintf(last_id, idlen, "%.*s", (int)(eol - p - 4), p + 4);
		char *json = apid_fmt("%.*s", (int)(end - data - 7), data + 7);
		yajl_val v = apid_parse(json);
		ck_assert_str_eq(jstr(v, "cursor"), last_id);
		char line[160];
		snprintf(line, sizeof(line), "%s/%s=%s\n", jstr(v, "stationId"),
			 jstr(v, "chargerId"), jstr(v, "state"));
		strncat(seen, line, seenlen - strlen(seen) - 1);
		yajl_tree_free(v);
		free(json);
		n++;
		p = end;
	}
	return n;
}

/* A sample of /metrics ("name" or "name{labels}"); -1 when absent. */
static double metric(struct apid_env *e, const char *series)
{
	char *body = NULL;
	ck_assert_int_eq(apid_get(e, "/metrics", &body), 200);
	double v = -1;
	size_t len = strlen(series);
	for (const char *line = body; line && *line; line = strchr(line, '\n'), line += !!line)
		if (strncmp(line, series, len) == 0 && line[len] == ' ')
			v = strtod(line + len + 1, NULL);
	free(body);
	return v;
}

static void status(struct fixture *f, const char *charger, int stat)
{
	apid_set_status(&f->e, "ME000001", charger, stat, (long)time(NULL));
}

START_TEST(status_changes_reach_stream_and_long_poll_in_order)
{
	struct fixture f;
	start(&f, NULL);
	char seen[1024] = "";
	size_t count = 0;
	/* no cursor: from now, nothing yet */
	char *c0 = poll_changes(&f.e, "timeout=0", seen, sizeof(seen), &count);
	ck_assert_uint_eq(count, 0);

	struct sse s;
	char *q = apid_fmt("since=%s", c0);
	sse_open(&s, f.e.port, q, NULL);
	free(q);
	ck_assert_msg(sse_wait(&s, 0, "\r\n\r\n", 3000), "no stream head: %s", s.buf);
	ck_assert_msg(strstr(s.buf, " 200 OK\r\n") && strstr(s.buf, "text/event-stream"), "%s",
		      s.buf);
	size_t body = (size_t)(strstr(s.buf, "\r\n\r\n") + 4 - s.buf);

	struct waiter w = {.e = &f.e};
	snprintf(w.query, sizeof(w.query), "since=%s&timeout=20", c0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
	usleep(300000); /* the long-poll is waiting */
	/* /metrics counts the clients open now, by kind */
	ck_assert_double_eq(metric(&f.e, "apid_feed_clients{kind=\"stream\"}"), 1);
	ck_assert_double_eq(metric(&f.e, "apid_feed_clients{kind=\"long_poll\"}"), 1);
	ck_assert_double_eq(metric(&f.e, "apid_feed_events_total"), 0);
	long written = apid_now_ms();
	status(&f, "01", 3);
	status(&f, "02", 3);
	status(&f, "01", 2);
	pthread_join(t, NULL);
	ck_assert_msg(w.count >= 1 &&
			      strncmp(w.seen, "ME000001/01=CHARGING_IN_PROGRESS\n", 33) == 0,
		      "%s", w.seen);
	ck_assert_msg(apid_now_ms() - written < 2000, "long-poll answered after %ld ms",
		      apid_now_ms() - written);
	/* the rest from its cursor: in order, each once */
	char *cur = w.cursor;
	count = w.count;
	snprintf(seen, sizeof(seen), "%s", w.seen);
	while (count < 3) {
		q = apid_fmt("since=%s&timeout=5", cur);
		free(cur);
		cur = poll_changes(&f.e, q, seen, sizeof(seen), &count);
		free(q);
	}
	const char *want = "ME000001/01=CHARGING_IN_PROGRESS\nME000001/"
			   "02=CHARGING_IN_PROGRESS\nME000001/01=STANDBY\n";
	ck_assert_str_eq(seen, want);
	ck_assert_uint_eq(count, 3);

	/* the stream got the same, in the same order */
	ck_assert_msg(sse_wait(&s, body, "STANDBY", 3000), "stream: %s", s.buf + body);
	char got[1024], last_id[64];
	ck_assert_uint_eq(sse_events(&s, body, got, sizeof(got), last_id, sizeof(last_id)), 3);
	ck_assert_str_eq(got, want);
	ck_assert_str_eq(last_id, cur); /* one cursor for both */
	/* each change written once to the stream and once to the long-polls;
	 * the long-poll is answered: only the stream is open */
	ck_assert_double_eq(metric(&f.e, "apid_feed_events_total"), 6);
	ck_assert_double_eq(metric(&f.e, "apid_feed_clients{kind=\"stream\"}"), 1);
	ck_assert_double_eq(metric(&f.e, "apid_feed_clients{kind=\"long_poll\"}"), 0);
	/* the stream's three and the waiting long-poll's first were pushed as
	 * they came: their delay from the XADD is observed, under a few s */
	double pushed = metric(&f.e, "apid_feed_delivery_delay_seconds_count");
	ck_assert_msg(pushed >= 4, "delivery delays observed: %g", pushed);
	double delay_sum = metric(&f.e, "apid_feed_delivery_delay_seconds_sum");
	ck_assert_msg(delay_sum >= 0 && delay_sum / pushed < 3, "mean delay %g s", delay_sum / pushed);

	/* heartbeats keep the stream open past the request, keep-alive and send
	 * timeouts (1 s each here) and evhttp's own connection timeout (their
	 * sum plus 10 s): a change 14 s later still arrives */
	size_t mark = s.len;
	usleep(14000000);
	ck_assert_msg(sse_wait(&s, mark, ": heartbeat", 1000), "no heartbeat");
	status(&f, "02", 2);
	ck_assert_msg(sse_wait(&s, mark, "\"state\":\"STANDBY\",", 3000) &&
			      strstr(s.buf + mark, "\"chargerId\":\"02\""),
		      "stream after 14 s: %s", s.buf + mark);
	size_t n4 = sse_events(&s, mark, got, sizeof(got), last_id, sizeof(last_id));
	ck_assert_uint_eq(n4, 1);
	ck_assert_str_eq(got, "ME000001/02=STANDBY\n");
	char *c4 = strdup(last_id);
	sse_close(&s);

	/* changes while disconnected; a reconnect with Last-Event-ID gets
	 * exactly those */
	status(&f, "01", 3);
	status(&f, "02", 3);
	sse_open(&s, f.e.port, "", c4);
	ck_assert_msg(
		sse_wait(&s, 0, "\"chargerId\":\"02\",\"state\":\"CHARGING_IN_PROGRESS\"", 3000),
		"reconnect: %s", s.buf);
	body = (size_t)(strstr(s.buf, "\r\n\r\n") + 4 - s.buf);
	usleep(300000);
	sse_wait(&s, s.len, "never", 200);
	ck_assert_uint_eq(sse_events(&s, body, got, sizeof(got), last_id, sizeof(last_id)), 2);
	ck_assert_str_eq(got,
			 "ME000001/01=CHARGING_IN_PROGRESS\nME000001/02=CHARGING_IN_PROGRESS\n");
	sse_close(&s);
	/* and a long-poll from the same cursor: the same two, then nothing */
	seen[0] = '\0';
	count = 0;
	q = apid_fmt("since=%s&timeout=0", c4);
	char *c6 = poll_changes(&f.e, q, seen, sizeof(seen), &count);
	free(q);
	ck_assert_str_eq(seen,
			 "ME000001/01=CHARGING_IN_PROGRESS\nME000001/02=CHARGING_IN_PROGRESS\n");
	ck_assert_str_eq(c6, last_id);
	q = apid_fmt("since=%s&timeout=1", c6);
	long t0 = apid_now_ms();
	free(poll_changes(&f.e, q, seen, sizeof(seen), &count));
	ck_assert_uint_eq(count, 2);
	ck_assert_msg(apid_now_ms() - t0 >= 900, "an empty long-poll waits its timeout");
	free(q);
	free(c0);
	free(cur);
	free(c4);
	free(c6);
	stop(&f);
}
END_TEST

START_TEST(cursors_limits_and_master_data)
{
	struct fixture f;
	start(&f, (char *[]){"APID_FEED_MAX_CLIENTS=2", "APID_FEED_RETAIN=1000", NULL});
	struct apid_env *e = &f.e;
	apid_expect_400(e, "/stations/changes?since=abc", "since: 'abc' is not a cursor");
	apid_expect_400(e, "/stations/changes?timeout=61", "timeout");
	apid_expect_400(e, "/stations/changes?limit=0", "limit");
	char seen[4096] = "";
	size_t count = 0;
	char *c0 = poll_changes(e, "timeout=0", seen, sizeof(seen), &count);

	/* two streams open: the third client is refused, a freed place is taken */
	struct sse a, b;
	char *q = apid_fmt("since=%s", c0);
	sse_open(&a, e->port, q, NULL);
	sse_open(&b, e->port, q, NULL);
	free(q);
	ck_assert(sse_wait(&a, 0, "\r\n\r\n", 3000));
	ck_assert(sse_wait(&b, 0, "\r\n\r\n", 3000));
	yajl_val v = apid_json(e, "/stations/changes?timeout=0", 503);
	ck_assert_msg(strstr(jstr(v, "message"), "too many change-feed clients"), "%s",
		      jstr(v, "message"));
	yajl_tree_free(v);
	ck_assert_double_eq(metric(e, "apid_feed_dropped_total{reason=\"max_clients\"}"), 1);
	ck_assert_double_eq(metric(e, "apid_feed_clients{kind=\"stream\"}"), 2);
	sse_close(&b);
	long deadline = apid_now_ms() + 3000; /* found gone at its next heartbeat */
	while (apid_get(e, "/stations/changes?timeout=0", NULL) != 200)
		ck_assert_msg(apid_now_ms() < deadline, "the closed stream's place never freed");
	sse_close(&a);

	/* a new station in a finished load: an "added" event */
	apid_station(e->pg, "ME000009", "New", "서울특별시 중구 세종대로 9", 37.561, 126.971, "ME",
		     "환경부", "환경부", "11");
	apid_charger(e->pg, "ME000009", "01", "02", "7", 2, 0);
	long run = itest_pg_long(e->pg, "INSERT INTO ingest_run (job, status, finished_at) "
					"VALUES ('chargers', 'ok', now() + interval '1 second') "
					"RETURNING id");
	apid_sqlf(e->pg, "UPDATE station SET last_run_id = %ld WHERE stat_id = 'ME000009'", run);
	apid_sqlf(e->pg, "UPDATE charger SET last_run_id = %ld WHERE stat_id = 'ME000009'", run);
	apid_sql(e->pg, "UPDATE ingest_run SET started_at = now() - interval '1 minute'");
	seen[0] = '\0';
	count = 0;
	q = apid_fmt("since=%s&timeout=10", c0);
	char *c1 = poll_changes(e, q, seen, sizeof(seen), &count);
	free(q);
	ck_assert_str_eq(seen, "added:ME000009\n");
	ck_assert_msg(strstr(c1, ".") && atol(strchr(c1, '.') + 1) == run, "cursor %s", c1);
	/* then it loses its only charger: "deleted" */
	long run2 = itest_pg_long(e->pg, "INSERT INTO ingest_run (job, status, finished_at) "
					 "VALUES ('chargers', 'ok', now() + interval '2 second') "
					 "RETURNING id");
	apid_sqlf(e->pg,
		  "UPDATE charger SET deleted_at = now(), last_run_id = %ld WHERE stat_id = "
		  "'ME000009'",
		  run2);
	seen[0] = '\0';
	q = apid_fmt("since=%s&timeout=10", c1);
	char *c2 = poll_changes(e, q, seen, sizeof(seen), &count);
	free(q);
	ck_assert_str_eq(seen, "deleted:ME000009\n");

	/* 1,100 status changes: the 1,000 kept no longer reach back to c0 */
	char when[32], key[RKEYS_KEY_MAX];
	snprintf(when, sizeof(when), "%ld", (long)time(NULL));
	rkeys_station(key, sizeof(key), "ME000001");
	for (int i = 0; i < 1100; i++)
		apid_redis(e, 11,
			   (const char *[]){"XADD", RKEYS_CHANGES, "*", "s", "ME000001", "c", "01",
					    "st", i % 2 ? "2" : "3", "t", when});
	/* wait until apid has read them all (its head is the stream's last id) */
	char err[256];
	redisReply *r = rds_command(
		e->redis, 6, (const char *[]){"XREVRANGE", RKEYS_CHANGES, "+", "-", "COUNT", "1"},
		NULL, err, sizeof(err));
	ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1, "XREVRANGE: %s", err);
	char *last = apid_fmt("%s.", r->element[0]->element[0]->str);
	freeReplyObject(r);
	deadline = apid_now_ms() + 10000;
	for (;;) {
		size_t none = 0;
		char scratch[64] = "";
		char *head = poll_changes(e, "timeout=0", scratch, sizeof(scratch), &none);
		bool caught_up = strncmp(head, last, strlen(last)) == 0;
		free(head);
		if (caught_up)
			break;
		ck_assert_msg(apid_now_ms() < deadline, "apid never read up to %s", last);
		usleep(50000);
	}
	free(last);
	char *path = apid_fmt("/stations/changes?since=%s&timeout=0", c2);
	v = apid_json(e, path, 410);
	free(path);
	ck_assert_msg(strstr(jstr(v, "message"), "older than the history kept"), "%s",
		      jstr(v, "message"));
	char *oldest = strdup(jstr(v, "oldestCursor"));
	yajl_tree_free(v);
	/* from the oldest cursor: what is kept (the last 1,000 entries and the
	 * two loads), at most `limit` */
	seen[0] = '\0';
	count = 0;
	q = apid_fmt("since=%s&timeout=0&limit=1000", oldest);
	char *c3 = poll_changes(e, q, seen, sizeof(seen), &count);
	free(q);
	ck_assert_uint_ge(count, 999);
	ck_assert_uint_le(count, 1000);
	free(c0);
	free(c1);
	free(c2);
	free(c3);
	free(oldest);
	stop(&f);
}
END_TEST

/* ---- from the simulator, through realtimed ---- */

#define SIM_KEY "fake-service-key-0010"

/* GET a simulator admin path; returns the "item" member's field. */
static void sim_item(const struct itest_sim *sim, const char *what, char *stat_id, char *chger_id,
		     int *stat)
{
	char *path = apid_fmt("/__admin/%s", what);
	char *body = NULL;
	ck_assert_int_eq(itest_sim_get(sim, path, &body, NULL), 200);
	free(path);
	yajl_val v = apid_parse(body);
	free(body);
	yajl_val item = jkey(v, "item");
	snprintf(stat_id, 16, "%s", jstr(item, "statId"));
	snprintf(chger_id, 8, "%s", jstr(item, "chgerId"));
	*stat = atoi(jstr(item, "stat"));
	yajl_tree_free(v);
}

struct poller {
	struct apid_env *e;
	char cursor[64];
	char seen[65536];
	const char *until; /* stop once this line was seen */
};

static void *poller_main(void *arg)
{
	struct poller *p = arg;
	long deadline = apid_now_ms() + 30000;
	size_t count = 0;
	while (!strstr(p->seen, p->until) && apid_now_ms() < deadline) {
		char *q = apid_fmt("since=%s&timeout=5", p->cursor);
		char *next = poll_changes(p->e, q, p->seen, sizeof(p->seen), &count);
		snprintf(p->cursor, sizeof(p->cursor), "%s", next);
		free(next);
		free(q);
	}
	return NULL;
}

START_TEST(simulator_change_reaches_stream_and_long_poll)
{
	struct itest_sim sim;
	itest_sim_start(&sim, (const char *const[]){"--seed", "10", "--chargers", "60", "--keys",
						    SIM_KEY, NULL});
	struct fixture f;
	stores(&f);
	struct apid_env *e = &f.e;
	/* the master data from the simulator */
	char *db = apid_fmt("DATABASE_URL=%s", e->db_url),
	     *up = apid_fmt("UPSTREAM_URL=%s", sim.base);
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("ingestd"));
	char *out = NULL;
	int rc = itest_run((char *[]){bin, "chargers", NULL},
			   (char *[]){db, up, "UPSTREAM_KEYS=" SIM_KEY, "LOG_LEVEL=warn", NULL},
			   120000, &out);
	ck_assert_msg(rc == 0, "ingestd chargers: %s", out);
	free(out);
	free(db);
	/* realtimed polling it into Redis */
	char *redis_env = apid_fmt("REDIS_URL=%s", e->redis_url);
	snprintf(bin, sizeof(bin), "%s", itest_bin("realtimed"));
	struct itest_proc rt;
	ck_assert(itest_spawn(&rt, (char *[]){bin, NULL},
			      (char *[]){redis_env, up, "UPSTREAM_KEYS=" SIM_KEY,
					 "REALTIMED_ADMIN_PORT=0", "LOG_FORMAT=json",
					 "REALTIMED_POLL_INTERVAL=1", "REALTIMED_STATUS_PERIOD=1",
					 "REALTIMED_RESTORE_INGESTD=", NULL}));
	free(redis_env);
	free(up);
	apid_start(e, (char *[]){"APID_FEED_HEARTBEAT_SECONDS=0.5", NULL}, true);
	usleep(2000000); /* realtimed's first sweep is in */

	char seen[4096] = "";
	size_t count = 0;
	char *c0 = poll_changes(e, "timeout=0", seen, sizeof(seen), &count);
	struct sse s;
	char *q = apid_fmt("since=%s", c0);
	sse_open(&s, e->port, q, NULL);
	free(q);
	ck_assert(sse_wait(&s, 0, "\r\n\r\n", 3000));
	size_t body = (size_t)(strstr(s.buf, "\r\n\r\n") + 4 - s.buf);

	/* charger 7 changes twice in the simulator: to a state it is not in,
	 * then to STANDBY */
	char stat_id[16], chger_id[8];
	int stat;
	sim_item(&sim, "charger?index=7", stat_id, chger_id, &stat);
	int first = stat == 3 ? 4 : 3;
	char want1[96], want2[96];
	snprintf(want1, sizeof(want1), "%s/%s=%s\n", stat_id, chger_id, model_status_name(first));
	snprintf(want2, sizeof(want2), "%s/%s=STANDBY\n", stat_id, chger_id);
	struct poller p = {.e = e, .until = want2};
	snprintf(p.cursor, sizeof(p.cursor), "%s", c0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, poller_main, &p), 0);
	char *what = apid_fmt("status?index=7&stat=%d", first);
	sim_item(&sim, what, stat_id, chger_id, &stat);
	free(what);
	usleep(1100000); /* statUpdDt is whole seconds: the second change is newer */
	sim_item(&sim, "status?index=7&stat=2", stat_id, chger_id, &stat);
	pthread_join(t, NULL);
	char *at1 = strstr(p.seen, want1), *at2 = strstr(p.seen, want2);
	ck_assert_msg(at1 && at2 && at1 < at2, "long-poll never saw %s then %s: %s", want1, want2,
		      p.seen);
	/* the stream: the same changes in the same order, each once */
	char needle[96];
	snprintf(needle, sizeof(needle),
		 "\"stationId\":\"%s\",\"chargerId\":\"%s\",\"state\":\"STANDBY\"", stat_id,
		 chger_id);
	ck_assert_msg(sse_wait(&s, body, needle, 10000), "stream never saw %s", want2);
	char got[65536], last_id[64];
	sse_events(&s, body, got, sizeof(got), last_id, sizeof(last_id));
	size_t upto = (size_t)(at2 - p.seen) + strlen(want2);
	ck_assert_msg(strncmp(got, p.seen, upto) == 0, "stream and long-poll differ:\n%s\n--\n%.*s",
		      got, (int)upto, p.seen);
	sse_close(&s);
	free(c0);
	itest_signal(&rt, SIGTERM);
	ck_assert_int_eq(itest_wait(&rt, 15000), 0);
	itest_stop(&rt);
	stop(&f);
	itest_sim_stop(&sim);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_feed");
	TCase *tc = tcase_create("feed");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, status_changes_reach_stream_and_long_poll_in_order);
	tcase_add_test(tc, cursors_limits_and_master_data);
	tcase_add_test(tc, simulator_change_reaches_stream_and_long_poll);
	suite_add_tcase(s, tc);
	return s;
}
