/* /docs, the API page for people (issue 10): apid serves Swagger UI
 * (npm's swagger-ui-dist, embedded by the build) over /openapi.json. The
 * files are served with their types; then headless Chromium
 * (tests/integration/test_apid_docs.js, through chromedriver) loads the
 * page, waits for the operations to render, runs GET /stations/{stationId}
 * from it (Try it out, the id typed into its box, Execute) and checks the
 * answer the page shows. No browser, no pass: chromium and chromium-driver
 * come with `make deps`. */
#include "testmain.h"

#include "test_apid.h"

START_TEST(page_renders_and_runs_a_request)
{
	struct itest_store redis;
	struct apid_env e;
	memset(&e, 0, sizeof(e));
	ck_assert(itest_redis_start(&redis));
	apid_db_setup(&e, NULL);
	apid_redis_setup(&e, redis.url);
	apid_station(e.pg, "DC000001", "문서 충전소", "서울특별시 중구 세종대로 110", 37.5663,
		     126.9779, "ME", "환경부", "환경부", "11");
	apid_charger(e.pg, "DC000001", "01", "04", "50", 2, 1732500000);
	apid_start(&e, NULL, true);

	/* the page and the two files it loads, with their types */
	static const struct {
		const char *path, *type, *marker;
	} files[] = {
		{"/docs", "text/html", "SwaggerUIBundle({"},
		{"/docs/", "text/html", "url: \"/openapi.json\""},
		{"/docs/swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle"},
		{"/docs/swagger-ui.css", "text/css", ".swagger-ui"},
	};
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		char *body = NULL, *headers = NULL;
		ck_assert_int_eq(apid_get_headers(&e, "GET", files[i].path, &body, &headers), 200);
		ck_assert_msg(strstr(headers, files[i].type), "%s: %s", files[i].path, headers);
		ck_assert_msg(strstr(body, files[i].marker), "%s lacks %s", files[i].path,
			      files[i].marker);
		free(body);
		free(headers);
	}
	ck_assert_int_eq(apid_get(&e, "/docs/nothing.js", NULL), 404);

	/* the browser */
	char *script = itest_path("tests/integration/test_apid_docs.js");
	char *base = apid_fmt("http://127.0.0.1:%d", e.port);
	char *argv[] = {"/usr/bin/node", script, base, "DC000001", "문서 충전소", NULL};
	char *out = NULL;
	int rc = itest_run(argv, NULL, 150000, &out);
	fprintf(stderr, "%s", out ? out : "");
	ck_assert_msg(rc == 0, "the /docs page in Chromium (rc %d):\n%s", rc, out ? out : "");
	ck_assert_msg(out && strstr(out, "response shown: status 200"), "%s", out);
	free(out);
	free(base);
	free(script);
	apid_teardown(&e);
	itest_store_stop(&redis, "redis");
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("apid_docs");
	TCase *tc = tcase_create("docs");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, page_renders_and_runs_a_request);
	suite_add_tcase(s, tc);
	return s;
}
