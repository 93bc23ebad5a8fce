/* Fault campaign (issue 9): PostgreSQL restarted under apid load.
 *
 * apid runs on a private PostgreSQL (and a private Redis); four client
 * threads, each on its own keep-alive connection (a fresh one every 25
 * requests, so the accept path is exercised too), cycle through a box
 * query, a station, a search and the statistics, while the server is
 * stopped (fast shutdown), left down for a while and started again.
 * Every answer must be 200 or 503 with a reason, a 503 only between the stop
 * and a bounded margin after the restart, and no request may fail at the
 * transport level (refused, reset, empty reply). apid keeps running, and a
 * load committed after the restart is served. The figures are printed
 * (requests, 503s, the down window). */
#include "testmain.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "test_apid.h"

#define CLIENTS	      4
#define MAX_PER_CLIENT 6000 /* bounds the loop whatever happens */
#define DOWN_MS	      3000 /* how long PostgreSQL stays down */
#define MARGIN_MS     2000 /* a 503 is allowed this long after the restart returned */
#define STATIONS      120

struct sample {
	long t_ms; /* when the answer arrived, since the load began */
	long status;
	int curl_code;
	bool has_reason; /* a 503 whose body carries a "message" */
};

struct client {
	int id, port;
	long t0;
	atomic_bool *stop;
	struct sample *samples;
	long n;
};

static size_t keep_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	FILE *mem = userdata;
	return fwrite(ptr, size, nmemb, mem);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	CURL *curl = curl_easy_init();
	for (long i = 0; i < MAX_PER_CLIENT && !atomic_load(c->stop); i++) {
		char url[256];
		long k = (i + c->id) % 4, st = 1 + (i * 7 + c->id) % STATIONS;
		if (k == 0)
			snprintf(url, sizeof(url),
				 "http://127.0.0.1:%d/stations?latitude=37.5&longitude=127"
				 "&latitudeDelta=0.2&longitudeDelta=0.2",
				 c->port);
		else if (k == 1)
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/stations/FT%06ld", c->port, st);
		else if (k == 2)
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/stations/search?q=Fault%%20%ld",
				 c->port, st);
		else
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/stations/FT%06ld/statistics",
				 c->port, st);
		char *body = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&body, &len);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_body);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, mem);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, i % 25 == 0 ? 1L : 0L);
		struct sample *s = &c->samples[c->n++];
		s->curl_code = (int)curl_easy_perform(curl);
		fclose(mem);
		s->status = 0;
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &s->status);
		s->t_ms = apid_now_ms() - c->t0;
		s->has_reason = body && strstr(body, "\"message\":\"") &&
				!strstr(body, "\"message\":\"\"");
		free(body);
		usleep(3000); /* a steady load, not a benchmark: the machine is shared */
	}
	curl_easy_cleanup(curl);
	return NULL;
}

static void seed(struct apid_env *e)
{
	apid_sql(e->pg, "BEGIN");
	for (int i = 1; i <= STATIONS; i++) {
		char id[16], name[32], addr[64];
		snprintf(id, sizeof(id), "FT%06d", i);
		snprintf(name, sizeof(name), "Fault %d", i);
		snprintf(addr, sizeof(addr), "서울특별시 중구 세종대로 %d", i);
		apid_station(e->pg, id, name, addr, 37.45 + (i % 10) * 0.01, 126.95 + (i / 10) * 0.01,
			     "ME", "환경부", "환경부", "11");
		apid_charger(e->pg, id, "01", "02", "7", 2, 0);
		if (i % 3 == 0)
			apid_charger(e->pg, id, "02", "04", "50", 3, 0);
	}
	apid_sql(e->pg, "INSERT INTO ingest_run (job, status, finished_at) VALUES ('chargers', "
			"'ok', now())");
	apid_sql(e->pg, "COMMIT");
}

START_TEST(postgres_restarted_under_load)
{
	struct itest_store pg = {0}, redis = {0};
	ck_assert(itest_pg_start(&pg));
	ck_assert(itest_redis_start(&redis));
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, pg.url);
	apid_redis_setup(&e, redis.url);
	seed(&e);
	PQfinish(e.pg); /* the server goes away under it */
	e.pg = NULL;
	apid_start(&e, NULL, true);

	curl_global_init(CURL_GLOBAL_ALL); /* before the threads: not thread-safe */
	atomic_bool stop = false;
	struct client clients[CLIENTS];
	pthread_t threads[CLIENTS];
	long t0 = apid_now_ms();
	for (int i = 0; i < CLIENTS; i++) {
		clients[i] = (struct client){.id = i, .port = e.port, .t0 = t0, .stop = &stop};
		clients[i].samples = calloc(MAX_PER_CLIENT, sizeof(struct sample));
		ck_assert_int_eq(pthread_create(&threads[i], NULL, client_main, &clients[i]), 0);
	}
	usleep(1000000);
	long down_from = apid_now_ms() - t0;
	ck_assert(itest_store_ctl(&pg, "pg", "stop")); /* pg_ctl -m fast */
	long down_done = apid_now_ms() - t0;
	usleep(DOWN_MS * 1000);
	ck_assert_int_eq(itest_wait(&e.proc, 0), -1); /* apid still runs */
	ck_assert(itest_store_ctl(&pg, "pg", "start"));
	long up_at = apid_now_ms() - t0;

	/* a load committed after the restart is picked up (ingest_run poll) */
	e.pg = itest_pg_connect(e.db_url);
	apid_sql(e.pg, "BEGIN");
	apid_station(e.pg, "FT999999", "Fault after restart", "서울특별시 중구 세종대로 999", 37.5,
		     127.0, "ME", "환경부", "환경부", "11");
	apid_charger(e.pg, "FT999999", "01", "02", "7", 2, 0);
	apid_sql(e.pg, "INSERT INTO ingest_run (job, status, finished_at) VALUES ('chargers', "
		       "'ok', now())");
	apid_sql(e.pg, "COMMIT");
	apid_wait_for(&e, "/stations/FT999999", "\"stationName\":\"Fault after restart\"", 20000);
	long visible_at = apid_now_ms() - t0;
	/* a last stretch of load on the new model, at least a second past the
	 * margin (a slow restart can end after the load was visible) */
	usleep(1000000);
	while (apid_now_ms() - t0 < up_at + MARGIN_MS + 1000)
		usleep(50000);
	atomic_store(&stop, true);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(threads[i], NULL);
	long end_at = apid_now_ms() - t0;

	long total = 0, ok = 0, unavailable = 0, first_503 = -1, last_503 = -1;
	long after = 0; /* answers after the margin */
	for (int i = 0; i < CLIENTS; i++) {
		for (long k = 0; k < clients[i].n; k++) {
			const struct sample *s = &clients[i].samples[k];
			total++;
			ck_assert_msg(s->curl_code == CURLE_OK,
				      "client %d request %ld at %ld ms: transport error %d (%s)", i, k,
				      s->t_ms, s->curl_code, curl_easy_strerror(s->curl_code));
			ck_assert_msg(s->status == 200 || s->status == 503,
				      "client %d request %ld at %ld ms: HTTP %ld", i, k, s->t_ms,
				      s->status);
			if (s->status == 200) {
				ok++;
			} else {
				unavailable++;
				ck_assert_msg(s->has_reason, "a 503 without a reason at %ld ms", s->t_ms);
				ck_assert_msg(s->t_ms >= down_from && s->t_ms <= up_at + MARGIN_MS,
					      "a 503 at %ld ms, outside the down window %ld..%ld ms "
					      "(+%d ms)",
					      s->t_ms, down_from, up_at, MARGIN_MS);
				if (first_503 < 0 || s->t_ms < first_503)
					first_503 = s->t_ms;
				if (s->t_ms > last_503)
					last_503 = s->t_ms;
			}
			after += s->t_ms > up_at + MARGIN_MS;
		}
		free(clients[i].samples);
	}
	printf("pg_restart: %ld requests (%ld 200, %ld 503; first 503 at %ld ms, last at %ld ms); "
	       "stop %ld..%ld ms, back at %ld ms (down %ld ms); new load served at %ld ms; "
	       "%ld answers after the margin; end %ld ms\n",
	       total, ok, unavailable, first_503, last_503, down_from, down_done, up_at,
	       up_at - down_from, visible_at, after, end_at);
	fflush(stdout);
	ck_assert_int_gt(total, 200);
	ck_assert_int_gt(after, 20); /* the load went on past the window, all 200 */
	ck_assert_int_eq(itest_wait(&e.proc, 0), -1);
	curl_global_cleanup();
	apid_teardown(&e); /* SIGTERM: exit 0, no sanitizer report */
	itest_store_stop(&redis, "redis");
	itest_store_stop(&pg, "pg");
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("fault_pg_restart");
	TCase *tc = tcase_create("pg_restart");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, postgres_restarted_under_load);
	suite_add_tcase(s, tc);
	return s;
}
