/* metrics: registry rules, update semantics, exposition text (exact), and
 * concurrent updates from several threads. */
#include "testmain.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"

static char *expose(struct metrics *m, struct buf *b)
{
	buf_reset(b);
	ck_assert(metrics_write(m, b));
	return b->data ? b->data : (char *)"";
}

START_TEST(counter_and_gauge_exposition)
{
	struct metrics *m = metrics_new();
	ck_assert_ptr_nonnull(m);
	struct metric *runs = metrics_counter(m, "ingest_runs_total", "Runs started.");
	struct metric *age = metrics_gauge(m, "apid_read_model_age_seconds", "Age of the read model.");
	ck_assert_ptr_nonnull(runs);
	ck_assert_ptr_nonnull(age);
	struct buf b = BUF_INIT;
	ck_assert_str_eq(expose(m, &b), "# HELP ingest_runs_total Runs started.\n"
					"# TYPE ingest_runs_total counter\n"
					"ingest_runs_total 0\n"
					"# HELP apid_read_model_age_seconds Age of the read model.\n"
					"# TYPE apid_read_model_age_seconds gauge\n"
					"apid_read_model_age_seconds 0\n");
	metric_inc(runs);
	metric_inc(runs);
	metric_add(runs, 40);
	metric_set(age, 12.5);
	ck_assert_str_eq(expose(m, &b), "# HELP ingest_runs_total Runs started.\n"
					"# TYPE ingest_runs_total counter\n"
					"ingest_runs_total 42\n"
					"# HELP apid_read_model_age_seconds Age of the read model.\n"
					"# TYPE apid_read_model_age_seconds gauge\n"
					"apid_read_model_age_seconds 12.5\n");
	buf_free(&b);
	metrics_free(m);
	metrics_free(NULL);
}
END_TEST

START_TEST(update_semantics)
{
	struct metrics *m = metrics_new();
	struct metric *c = metrics_counter(m, "c_total", "");
	struct metric *g = metrics_gauge(m, "g", "");
	static const double bounds[] = {1};
	struct metric *h = metrics_histogram(m, "h", "", bounds, 1);
	ck_assert(c && g && h);
	metric_add(c, -5);      /* counters never go down */
	metric_add(c, NAN);
	metric_set(c, 100);     /* not a gauge operation */
	metric_observe(c, 3);
	ck_assert(metric_value(c) == 0);
	metric_add(c, 0.25);
	metric_inc(c);
	ck_assert(metric_value(c) == 1.25);
	metric_set(g, 10);
	metric_add(g, -12.5);
	metric_inc(g);
	ck_assert(metric_value(g) == -1.5);
	metric_set(g, -INFINITY);
	ck_assert(isinf(metric_value(g)));
	metric_inc(h);          /* not a histogram operation */
	metric_observe(h, NAN); /* ignored */
	ck_assert_uint_eq(metric_count(h), 0);
	/* NULL series: silently nothing */
	metric_inc(NULL);
	metric_add(NULL, 1);
	metric_set(NULL, 1);
	metric_observe(NULL, 1);
	ck_assert(metric_value(NULL) == 0);
	struct buf b = BUF_INIT;
	ck_assert_ptr_nonnull(strstr(expose(m, &b), "\nc_total 1.25\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "\ng -Inf\n"));
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(histogram_buckets_cumulative)
{
	struct metrics *m = metrics_new();
	static const double bounds[] = {0.005, 0.01, 0.1, 1};
	struct metric_family *f = metrics_histogram_family(
		m, "apid_request_seconds", "Request latency.", "route", bounds, 4);
	ck_assert_ptr_nonnull(f);
	struct metric *s = METRIC_GET(f, "/stations");
	ck_assert_ptr_nonnull(s);
	static const double observations[] = {0.001, 0.005 /* le is inclusive */, 0.05, 0.5, 5, 5};
	for (size_t i = 0; i < sizeof(observations) / sizeof(observations[0]); i++)
		metric_observe(s, observations[i]);
	ck_assert_uint_eq(metric_bucket(s, 0), 2);
	ck_assert_uint_eq(metric_bucket(s, 1), 2);
	ck_assert_uint_eq(metric_bucket(s, 2), 3);
	ck_assert_uint_eq(metric_bucket(s, 3), 4);
	ck_assert_uint_eq(metric_bucket(s, 4), 6);
	ck_assert_uint_eq(metric_count(s), 6);
	ck_assert_double_eq_tol(metric_value(s), 10.556, 1e-9);
	struct buf b = BUF_INIT;
	ck_assert_str_eq(expose(m, &b),
			 "# HELP apid_request_seconds Request latency.\n"
			 "# TYPE apid_request_seconds histogram\n"
			 "apid_request_seconds_bucket{route=\"/stations\",le=\"0.005\"} 2\n"
			 "apid_request_seconds_bucket{route=\"/stations\",le=\"0.01\"} 2\n"
			 "apid_request_seconds_bucket{route=\"/stations\",le=\"0.1\"} 3\n"
			 "apid_request_seconds_bucket{route=\"/stations\",le=\"1\"} 4\n"
			 "apid_request_seconds_bucket{route=\"/stations\",le=\"+Inf\"} 6\n"
			 "apid_request_seconds_sum{route=\"/stations\"} 10.556000000000001\n" /* as Python repr() */
			 "apid_request_seconds_count{route=\"/stations\"} 6\n");
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(unlabelled_histogram_exposition)
{
	struct metrics *m = metrics_new();
	static const double bounds[] = {100, 1000};
	struct metric *h = metrics_histogram(m, "page_rows", "Rows per page.", bounds, 2);
	ck_assert_ptr_nonnull(h);
	metric_observe(h, 100);
	metric_observe(h, 9999);
	struct buf b = BUF_INIT;
	ck_assert_str_eq(expose(m, &b), "# HELP page_rows Rows per page.\n"
					"# TYPE page_rows histogram\n"
					"page_rows_bucket{le=\"100\"} 1\n"
					"page_rows_bucket{le=\"1000\"} 1\n"
					"page_rows_bucket{le=\"+Inf\"} 2\n"
					"page_rows_sum 10099\n"
					"page_rows_count 2\n");
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(labels_escaped)
{
	struct metrics *m = metrics_new();
	struct metric_family *f = metrics_counter_family(
		m, "apid_requests_total", "Requests by route\\status.\nSecond line.", "route,status");
	ck_assert_ptr_nonnull(f);
	metric_inc(METRIC_GET(f, "/stations", "200"));
	metric_add(METRIC_GET(f, "a\\b\"c\nd", "500"), 3);
	metric_inc(METRIC_GET(f, "강남\xff", "404")); /* invalid UTF-8 repaired */
	metric_inc(METRIC_GET(f, "/stations", "200"));
	struct buf b = BUF_INIT;
	ck_assert_str_eq(expose(m, &b),
			 "# HELP apid_requests_total Requests by route\\\\status.\\nSecond line.\n"
			 "# TYPE apid_requests_total counter\n"
			 "apid_requests_total{route=\"/stations\",status=\"200\"} 2\n"
			 "apid_requests_total{route=\"a\\\\b\\\"c\\nd\",status=\"500\"} 3\n"
			 "apid_requests_total{route=\"강남\xef\xbf\xbd\",status=\"404\"} 1\n");
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(family_without_series_yet)
{
	struct metrics *m = metrics_new();
	ck_assert_ptr_nonnull(metrics_gauge_family(m, "store_up", "Store reachable.", "store"));
	struct buf b = BUF_INIT;
	ck_assert_str_eq(expose(m, &b), "# HELP store_up Store reachable.\n# TYPE store_up gauge\n");
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(registration_refused)
{
	struct metrics *m = metrics_new();
	static const double good[] = {1, 2};
	static const double unordered[] = {2, 1};
	static const double equal[] = {1, 1};
	static const double with_nan[] = {1, NAN};
	static const double with_inf[] = {1, INFINITY};
	ck_assert_ptr_nonnull(metrics_counter(m, "ok_total", "fine"));
	ck_assert_ptr_nonnull(metrics_counter(m, "ns:sub_total", "colons are allowed"));
	ck_assert_ptr_null(metrics_counter(m, "ok_total", "duplicate"));
	ck_assert_ptr_null(metrics_gauge(m, "ok_total", "duplicate of another type"));
	ck_assert_ptr_null(metrics_counter(m, "", ""));
	ck_assert_ptr_null(metrics_counter(m, NULL, ""));
	ck_assert_ptr_null(metrics_counter(m, "1st", ""));
	ck_assert_ptr_null(metrics_counter(m, "a-b", ""));
	ck_assert_ptr_null(metrics_counter(m, "a b", ""));
	ck_assert_ptr_null(metrics_counter(NULL, "x", ""));
	ck_assert_ptr_null(metrics_counter_family(m, "l1", "", "route,route"));
	ck_assert_ptr_null(metrics_counter_family(m, "l2", "", "__reserved"));
	ck_assert_ptr_null(metrics_counter_family(m, "l3", "", "a,b,c,d,e"));
	ck_assert_ptr_null(metrics_counter_family(m, "l4", "", "a,"));
	ck_assert_ptr_null(metrics_counter_family(m, "l5", "", "has:colon"));
	ck_assert_ptr_null(metrics_counter_family(m, "l6", "", "9lives"));
	ck_assert_ptr_nonnull(metrics_counter_family(m, "l7", "", "a,b,c,d"));
	ck_assert_ptr_null(metrics_histogram_family(m, "h1", "", "le", good, 2));
	ck_assert_ptr_null(metrics_histogram(m, "h2", "", unordered, 2));
	ck_assert_ptr_null(metrics_histogram(m, "h3", "", equal, 2));
	ck_assert_ptr_null(metrics_histogram(m, "h4", "", with_nan, 2));
	ck_assert_ptr_null(metrics_histogram(m, "h5", "", with_inf, 2));
	ck_assert_ptr_null(metrics_histogram(m, "h6", "", good, 0));
	ck_assert_ptr_null(metrics_histogram(m, "h7", "", NULL, 2));
	ck_assert_ptr_null(metrics_histogram(m, "h8", "", good, METRIC_MAX_BUCKETS + 1));
	ck_assert_ptr_nonnull(metrics_histogram(m, "h9", "", good, 2));
	/* "le" is fine as a label of a non-histogram */
	ck_assert_ptr_nonnull(metrics_gauge_family(m, "g1", "", "le"));
	/* refused registrations leave no trace in the exposition */
	struct buf b = BUF_INIT;
	ck_assert_ptr_null(strstr(expose(m, &b), "h2"));
	ck_assert_ptr_null(strstr(b.data, "l1"));
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(series_lookup)
{
	struct metrics *m = metrics_new();
	struct metric_family *f = metrics_counter_family(m, "x_total", "", "route,status");
	ck_assert_ptr_nonnull(f);
	struct metric *a = METRIC_GET(f, "/a", "200");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(METRIC_GET(f, "/a", "200"), a); /* stable pointer */
	ck_assert_ptr_ne(METRIC_GET(f, "/a", "500"), a);
	ck_assert_ptr_null(METRIC_GET(f, "/a"));              /* too few values */
	ck_assert_ptr_null(METRIC_GET(f, "/a", "200", "x"));  /* too many */
	ck_assert_ptr_null(metric_get(f, (const char *const[]){"/a", NULL}, 2));
	ck_assert_ptr_null(metric_get(NULL, NULL, 0));
	/* the cardinality bound */
	char route[32];
	size_t made = 2;
	for (int i = 0; made < METRIC_MAX_SERIES; i++, made++) {
		snprintf(route, sizeof(route), "/r%d", i);
		ck_assert_ptr_nonnull(METRIC_GET(f, route, "200"));
	}
	ck_assert_ptr_null(METRIC_GET(f, "/one-too-many", "200"));
	ck_assert_ptr_eq(METRIC_GET(f, "/a", "200"), a); /* existing ones still found */
	metrics_free(m);
}
END_TEST

/* Several threads update the same series, create series and expose at the
 * same time; no increment is lost. */
#define THREADS 4
#define ROUNDS 50000

struct shared {
	struct metrics *m;
	struct metric *counter;
	struct metric *gauge;
	struct metric *hist;
	struct metric_family *by_thread;
};

static void *hammer(void *arg)
{
	struct shared *sh = arg;
	static const char *const names[THREADS] = {"t0", "t1", "t2", "t3"};
	static int next_id;
	int id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED) % THREADS;
	for (int i = 0; i < ROUNDS; i++) {
		metric_inc(sh->counter);
		metric_add(sh->gauge, 0.5);
		metric_observe(sh->hist, (i % 4) * 1.0);
		metric_inc(METRIC_GET(sh->by_thread, names[id], i % 2 ? "odd" : "even"));
	}
	return NULL;
}

static void *scrape(void *arg)
{
	struct shared *sh = arg;
	struct buf b = BUF_INIT;
	for (int i = 0; i < 200; i++) {
		buf_reset(&b);
		ck_assert(metrics_write(sh->m, &b));
	}
	buf_free(&b);
	return NULL;
}

START_TEST(concurrent_updates)
{
	static const double bounds[] = {0.5, 1.5, 2.5};
	struct shared sh = {.m = metrics_new()};
	ck_assert_ptr_nonnull(sh.m);
	sh.counter = metrics_counter(sh.m, "c_total", "");
	sh.gauge = metrics_gauge(sh.m, "g", "");
	sh.hist = metrics_histogram(sh.m, "h", "", bounds, 3);
	sh.by_thread = metrics_counter_family(sh.m, "per_thread_total", "", "thread,parity");
	ck_assert(sh.counter && sh.gauge && sh.hist && sh.by_thread);
	pthread_t threads[THREADS], scraper;
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, hammer, &sh), 0);
	ck_assert_int_eq(pthread_create(&scraper, NULL, scrape, &sh), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	pthread_join(scraper, NULL);
	ck_assert(metric_value(sh.counter) == (double)THREADS * ROUNDS);
	ck_assert(metric_value(sh.gauge) == THREADS * ROUNDS * 0.5);
	ck_assert_uint_eq(metric_count(sh.hist), THREADS * ROUNDS);
	for (size_t i = 0; i < 4; i++)
		ck_assert_uint_eq(metric_bucket(sh.hist, i), (i + 1) * THREADS * ROUNDS / 4);
	ck_assert(metric_value(sh.hist) == (0 + 1 + 2 + 3) * (double)THREADS * ROUNDS / 4);
	struct buf b = BUF_INIT;
	expose(sh.m, &b);
	char line[128];
	snprintf(line, sizeof(line), "per_thread_total{thread=\"t2\",parity=\"odd\"} %d\n",
		 ROUNDS / 2);
	ck_assert_msg(strstr(b.data, line) != NULL, "%s", b.data);
	snprintf(line, sizeof(line), "c_total %d\n", THREADS * ROUNDS);
	ck_assert_ptr_nonnull(strstr(b.data, line));
	buf_free(&b);
	metrics_free(sh.m);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("exposition");
	tcase_add_test(tc, counter_and_gauge_exposition);
	tcase_add_test(tc, update_semantics);
	tcase_add_test(tc, histogram_buckets_cumulative);
	tcase_add_test(tc, unlabelled_histogram_exposition);
	tcase_add_test(tc, labels_escaped);
	tcase_add_test(tc, family_without_series_yet);
	suite_add_tcase(s, tc);
	tc = tcase_create("registry");
	tcase_add_test(tc, registration_refused);
	tcase_add_test(tc, series_lookup);
	suite_add_tcase(s, tc);
	tc = tcase_create("threads");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, concurrent_updates);
	suite_add_tcase(s, tc);
	return s;
}
