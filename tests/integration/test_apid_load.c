/* A real `ingestd chargers` load (against the upstream simulator) landing
 * while clients keep asking: visible in answers after its NOTIFY, with no
 * failed request meanwhile. */
#include "testmain.h"

#include <pthread.h>
#include <stdatomic.h>

#include "test_apid.h"

#define REDIS_DB 10
#define SIM_KEY	 "fake-service-key-0001"

struct sim {
	struct itest_proc proc;
	int port;
};

static void sim_start(struct sim *s)
{
	char *dir = itest_tmpdir("sim");
	char *port_file = apid_fmt("%s/port", dir);
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("upstream-sim"));
	char *argv[] = {bin,
			"--port",
			"0",
			"--port-file",
			port_file,
			"--seed",
			"11",
			"--chargers",
			"3000",
			"--keys",
			SIM_KEY,
			"--clock",
			"fixed:20240601120000",
			NULL};
	ck_assert(itest_spawn(&s->proc, argv, NULL));
	s->port = itest_wait_port_file(port_file, 20000);
	ck_assert_int_gt(s->port, 0);
	free(port_file);
	free(dir);
}

static void sim_admin(const struct sim *s, const char *what)
{
	char *url = apid_fmt("http://127.0.0.1:%d/__admin/%s", s->port, what);
	long status = itest_http_get(url, NULL, NULL);
	ck_assert_msg(status == 200, "%s: %ld", url, status);
	free(url);
}

static void ingest(struct apid_env *e, const struct sim *s)
{
	char *db = apid_fmt("DATABASE_URL=%s", e->db_url);
	char *up = apid_fmt("UPSTREAM_URL=http://127.0.0.1:%d/B552584/EvCharger", s->port);
	char bin[4096];
	snprintf(bin, sizeof(bin), "%s", itest_bin("ingestd"));
	char *argv[] = {bin, "chargers", NULL};
	char *env[] = {db, up, "UPSTREAM_KEYS=" SIM_KEY, "LOG_LEVEL=warn", NULL};
	char *out = NULL;
	int rc = itest_run(argv, env, 120000, &out);
	ck_assert_msg(rc == 0, "ingestd chargers exited %d: %s", rc, out);
	free(out);
	free(db);
	free(up);
}

struct traffic {
	int port;
	char station[64];
	atomic_bool stop;
	atomic_long requests, failures;
	char last_failure[256];
};

static void *traffic_main(void *arg)
{
	struct traffic *t = arg;
	const char *paths[3] = {
		"/stations?latitude=36&longitude=128&latitudeDelta=4&longitudeDelta=4", "/filters",
		"/stations/regions?regions=all"};
	char station_path[128];
	snprintf(station_path, sizeof(station_path), "/stations/%s", t->station);
	for (long i = 0; !atomic_load(&t->stop); i++) {
		const char *path = i % 4 == 3 ? station_path : paths[i % 4];
		char url[256];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", t->port, path);
		long status = itest_http_get(url, NULL, NULL);
		atomic_fetch_add(&t->requests, 1);
		if (status != 200) {
			atomic_fetch_add(&t->failures, 1);
			snprintf(t->last_failure, sizeof(t->last_failure), "%s: %ld", path, status);
		}
	}
	return NULL;
}

START_TEST(load_during_traffic)
{
	struct sim s;
	sim_start(&s);
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	apid_db_setup(&e, NULL);
	char *url = apid_redis_db(itest_env("TEST_REDIS_URL"), REDIS_DB);
	apid_redis_setup(&e, url);
	free(url);
	ingest(&e, &s);
	long stations0 =
		itest_pg_long(e.pg, "SELECT count(*) FROM station WHERE deleted_at IS NULL");
	ck_assert_int_gt(stations0, 0);
	apid_start(&e, (char *[]){"APID_MAX_MARKERS=100000", "APID_MODEL_POLL_SECONDS=3600", NULL},
		   true);
	yajl_val v = apid_json(&e, "/readyz", 200);
	ck_assert_double_eq(jnum(v, "modelVersion"), 1);
	yajl_tree_free(v);

	struct traffic t = {.port = e.port};
	PGresult *res =
		itest_pg_exec(e.pg, "SELECT min(stat_id) FROM station WHERE deleted_at IS NULL");
	snprintf(t.station, sizeof(t.station), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	pthread_t threads[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, traffic_main, &t), 0);
	usleep(300000);

	/* the next epoch adds stations; the load lands with its NOTIFY */
	sim_admin(&s, "epoch?set=1");
	ingest(&e, &s);
	res = itest_pg_exec(e.pg, "SELECT stat_id, name FROM station WHERE deleted_at IS NULL "
				  "AND last_run_id = (SELECT max(id) FROM ingest_run) "
				  "AND created_at = updated_at ORDER BY stat_id LIMIT 1");
	ck_assert_msg(PQntuples(res) == 1, "the second load added no station");
	char *path = apid_fmt("/stations/%s", PQgetvalue(res, 0, 0));
	char *name = apid_fmt("\"stationName\":\"%s\"", PQgetvalue(res, 0, 1));
	PQclear(res);
	apid_wait_for(&e, path, name, 10000);
	v = apid_json(&e, "/readyz", 200);
	ck_assert_double_eq(jnum(v, "modelVersion"), 2);
	yajl_tree_free(v);
	usleep(300000);
	atomic_store(&t.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	ck_assert_int_gt(atomic_load(&t.requests), 20);
	ck_assert_msg(atomic_load(&t.failures) == 0, "%ld of %ld requests failed, last %s",
		      atomic_load(&t.failures), atomic_load(&t.requests), t.last_failure);
	free(path);
	free(name);
	apid_teardown(&e);
	itest_stop(&s.proc);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_load");
	TCase *tc = tcase_create("load");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, load_during_traffic);
	suite_add_tcase(s, tc);
	return s;
}
