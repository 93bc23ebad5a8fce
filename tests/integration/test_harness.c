/* The harness itself: after the suite passes, fails or is interrupted, no
 * PostgreSQL or Redis it started still runs and its temp dir is gone. Runs
 * tests/run.sh nested, on one small test binary. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"
#include "testmain.h"

struct nested_run {
	char dir[512];
	int pg_port;
	int redis_port;
	int exit_code;
};

/* Parse "harness: DIR" and "stores: postgresql://...:PORT/... redis://...:PORT/0". */
static void parse_output(const char *out, struct nested_run *run)
{
	const char *h = strstr(out, "harness: ");
	ck_assert_msg(h != NULL, "no harness line in:\n%s", out);
	ck_assert_int_eq(sscanf(h, "harness: %511s", run->dir), 1);
	const char *s = strstr(out, "stores: ");
	if (s) {
		const char *pg = strstr(s, "@127.0.0.1:");
		const char *rd = strstr(s, "redis://127.0.0.1:");
		ck_assert(pg && rd);
		run->pg_port = atoi(pg + strlen("@127.0.0.1:"));
		run->redis_port = atoi(rd + strlen("redis://127.0.0.1:"));
	}
}

static void assert_cleaned(const struct nested_run *run)
{
	struct stat st;
	ck_assert_msg(stat(run->dir, &st) != 0, "harness dir %s remains", run->dir);
	char cmd[1024];
	/* "[/]tmp/..." matches the dir but not this shell's own command line */
	snprintf(cmd, sizeof(cmd), "pgrep -f -- '[/]%s' >/dev/null", run->dir + 1);
	ck_assert_msg(system(cmd) != 0, "a process naming %s still runs", run->dir);
	if (run->pg_port)
		ck_assert_msg(!itest_wait_tcp(run->pg_port, 100), "PostgreSQL still listens on %d",
			      run->pg_port);
	if (run->redis_port)
		ck_assert_msg(!itest_wait_tcp(run->redis_port, 100), "Redis still listens on %d",
			      run->redis_port);
}

static char *runner_path(void)
{
	return itest_path("tests/run.sh");
}

START_TEST(cleanup_after_pass)
{
	char *runner = runner_path();
	char *argv[] = {runner, "integration", NULL};
	char *env[] = {"TESTS=test_cli", NULL};
	char *out = NULL;
	struct nested_run run = {0};
	run.exit_code = itest_run(argv, env, 300000, &out);
	parse_output(out, &run);
	ck_assert_msg(run.exit_code == 0, "nested run failed:\n%s", out);
	ck_assert_ptr_nonnull(strstr(out, "tests: 6 passed, 0 failed"));
	ck_assert_int_gt(run.pg_port, 0);
	assert_cleaned(&run);
	free(out);
	free(runner);
}
END_TEST

START_TEST(cleanup_after_failure)
{
	char *runner = runner_path();
	char *argv[] = {runner, "integration", NULL};
	/* binaries that do not exist: every test of test_cli fails */
	char *env[] = {"TESTS=test_cli", "TEST_BIN=/nonexistent-bin-dir", NULL};
	char *out = NULL;
	struct nested_run run = {0};
	run.exit_code = itest_run(argv, env, 300000, &out);
	parse_output(out, &run);
	ck_assert_msg(run.exit_code != 0, "nested run should fail:\n%s", out);
	ck_assert_ptr_nonnull(strstr(out, "failing: test_cli"));
	assert_cleaned(&run);
	free(out);
	free(runner);
}
END_TEST

START_TEST(cleanup_after_interrupt)
{
	char *runner = runner_path();
	char *argv[] = {runner, "integration", NULL};
	/* a test binary that runs until the interrupt: a real one may finish
	 * before the signal arrives, and the run would rightly exit 0 */
	char build[512], bin[600], build_env[600];
	snprintf(build, sizeof(build), "%s/hold-build", getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
	snprintf(bin, sizeof(bin), "%s/tests/integration", build);
	char mk[700];
	snprintf(mk, sizeof(mk), "mkdir -p '%s'", bin);
	ck_assert_int_eq(system(mk), 0);
	strncat(bin, "/test_hold", sizeof(bin) - strlen(bin) - 1);
	FILE *f = fopen(bin, "w");
	ck_assert_ptr_nonnull(f);
	char started[600];
	snprintf(started, sizeof(started), "%s/started", build);
	unlink(started);
	fprintf(f, "#!/bin/sh\ntouch '%s'\nexec sleep 300\n", started);
	fclose(f);
	ck_assert_int_eq(chmod(bin, 0755), 0);
	snprintf(build_env, sizeof(build_env), "TEST_BUILD=%s", build);
	char *env[] = {"TESTS=test_hold", build_env, NULL};
	struct itest_proc proc;
	ck_assert(itest_spawn(&proc, argv, env));
	/* interrupt once the stores and the test binary run, as Ctrl-C would
	 * (the whole group) */
	char *out = NULL;
	for (int i = 0; i < 2400; i++) { /* 120 s: initdb on a loaded machine */
		free(out);
		out = itest_proc_output(&proc);
		if (strstr(out, "stores: ") && access(started, F_OK) == 0)
			break;
		usleep(50000);
	}
	ck_assert_msg(strstr(out, "stores: ") != NULL, "stores never started:\n%s", out);
	ck_assert_msg(access(started, F_OK) == 0, "the test binary never started:\n%s", out);
	/* Again every 5 s, as a user presses Ctrl-C again: bash can miss a
	 * trapped signal that lands just before its `wait` builtin blocks (the
	 * trap then waits for a child to end; seen once in CI at load 10+). */
	int rc = -1;
	for (int i = 0; i < 24 && rc == -1; i++) {
		free(out);
		out = itest_proc_output(&proc);
		if (!strstr(out, "interrupted"))
			kill(-proc.pid, SIGINT);
		rc = itest_wait(&proc, 5000);
	}
	free(out);
	out = itest_proc_output(&proc);
	struct nested_run run = {0};
	parse_output(out, &run);
	ck_assert_msg(rc != 0 && rc != -1, "interrupted run exited %d:\n%s", rc, out);
	assert_cleaned(&run);
	free(out);
	itest_stop(&proc);
	free(runner);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("harness");
	TCase *tc = tcase_create("harness");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, cleanup_after_pass);
	tcase_add_test(tc, cleanup_after_failure);
	tcase_add_test(tc, cleanup_after_interrupt);
	suite_add_tcase(s, tc);
	return s;
}
