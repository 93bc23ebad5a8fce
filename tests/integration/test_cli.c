/* The three binaries' shared command line: help, version, config errors,
 * masked printing, and docs/config.md kept equal to the settings tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "testmain.h"

static const char *const roles[] = {"ingestd", "realtimed", "apid"};

static int run_role(const char *role, char **extra_args, char *const env[], char **out)
{
	char *argv[8] = {(char *)itest_bin(role)};
	char path[4096];
	snprintf(path, sizeof(path), "%s", argv[0]);
	argv[0] = path;
	int n = 1;
	for (int i = 0; extra_args && extra_args[i] && n < 7; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	return itest_run(argv, env, 20000, out);
}

static int count_lines(const char *text)
{
	int lines = 0;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	return lines;
}

START_TEST(bad_port_exits_78_naming_key)
{
	char *env[] = {"APID_PORT=abc", NULL};
	char *out = NULL;
	ck_assert_int_eq(run_role("apid", NULL, env, &out), 78);
	ck_assert_int_eq(count_lines(out), 1);
	ck_assert_str_eq(out, "apid: configuration error: APID_PORT: 'abc' is not an integer; "
			      "expected an integer from 0 to 65535\n");
	free(out);
}
END_TEST

START_TEST(every_role_has_help_and_version)
{
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		char *out = NULL;
		char *help[] = {"--help", NULL};
		ck_assert_int_eq(run_role(roles[i], help, NULL, &out), 0);
		ck_assert_msg(strstr(out, "Usage: ") && strstr(out, "--config FILE") &&
				      strstr(out, "Exit codes:"),
			      "%s --help: %s", roles[i], out);
		free(out);
		char *version[] = {"--version", NULL};
		ck_assert_int_eq(run_role(roles[i], version, NULL, &out), 0);
		ck_assert_msg(strncmp(out, roles[i], strlen(roles[i])) == 0, "%s", out);
		free(out);
	}
}
END_TEST

START_TEST(unknown_command_and_option_exit_64)
{
	char *out = NULL;
	char *bad[] = {"frobnicate", NULL};
	ck_assert_int_eq(run_role("ingestd", bad, NULL, &out), 64);
	ck_assert_ptr_nonnull(strstr(out, "unknown command 'frobnicate'"));
	free(out);
	char *none[] = {NULL};
	ck_assert_int_eq(run_role("ingestd", none, NULL, &out), 64);
	free(out);
	char *missing[] = {"--config", NULL};
	ck_assert_int_eq(run_role("apid", missing, NULL, &out), 64);
	ck_assert_ptr_nonnull(strstr(out, "--config needs a file name"));
	free(out);
}
END_TEST

START_TEST(print_config_masks_secrets)
{
	char *env[] = {"UPSTREAM_KEYS=fake-service-key-0001,fake-service-key-0002",
		       "DATABASE_URL=postgresql://ev:fake-db-password@127.0.0.1:1/ev",
		       "REDIS_URL=redis://:fake-redis-password@127.0.0.1:2/0", NULL};
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		char *out = NULL;
		char *args[] = {"--print-config", NULL};
		ck_assert_int_eq(run_role(roles[i], args, env, &out), 0);
		ck_assert_msg(!strstr(out, "fake-service-key") && !strstr(out, "fake-db-password") &&
				      !strstr(out, "fake-redis-password"),
			      "%s leaked a secret: %s", roles[i], out);
		ck_assert_ptr_nonnull(strstr(out, "UPSTREAM_KEYS=***,***\n"));
		ck_assert_ptr_nonnull(strstr(out, "LOG_LEVEL=info\n"));
		free(out);
	}
}
END_TEST

START_TEST(config_file_errors_name_the_key)
{
	char *dir = itest_tmpdir("cli");
	char path[4096];
	snprintf(path, sizeof(path), "%s/apid.env", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("# apid settings\nAPID_PORT=8081\nAPID_PORTT=1\n", f);
	fclose(f);
	char *out = NULL;
	char *args[] = {"--config", path, "--print-config", NULL};
	ck_assert_int_eq(run_role("apid", args, NULL, &out), 78);
	ck_assert_ptr_nonnull(strstr(out, "apid.env:3: APID_PORTT: unknown key for apid"));
	free(out);
	f = fopen(path, "w");
	fputs("APID_PORT=8081\nINGESTD_MIGRATIONS_DIR=/x\n", f);
	fclose(f);
	char *env[] = {"APID_PORT=9090", NULL};
	ck_assert_int_eq(run_role("apid", args, env, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "APID_PORT=9090\n")); /* the environment wins */
	free(out);
	char *no_env[] = {NULL};
	ck_assert_int_eq(run_role("apid", args, no_env, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "APID_PORT=8081\n"));
	free(out);
	free(dir);
}
END_TEST

START_TEST(docs_config_matches_tables)
{
	char *doc_path = itest_path("docs/config.md");
	char *doc = itest_read_file(doc_path);
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		char *out = NULL;
		char *args[] = {"--help-config", NULL};
		ck_assert_int_eq(run_role(roles[i], args, NULL, &out), 0);
		char begin[64], end[64];
		snprintf(begin, sizeof(begin), "<!-- BEGIN %s -->\n", roles[i]);
		snprintf(end, sizeof(end), "<!-- END %s -->", roles[i]);
		const char *from = strstr(doc, begin);
		ck_assert_msg(from != NULL, "docs/config.md has no section for %s", roles[i]);
		from += strlen(begin);
		const char *to = strstr(from, end);
		ck_assert_ptr_nonnull(to);
		ck_assert_msg(strlen(out) == (size_t)(to - from) && memcmp(out, from, strlen(out)) == 0,
			      "docs/config.md differs from `%s --help-config`: run docs/gen-config.sh",
			      roles[i]);
		free(out);
	}
	free(doc);
	free(doc_path);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");
	tcase_add_test(tc, bad_port_exits_78_naming_key);
	tcase_add_test(tc, every_role_has_help_and_version);
	tcase_add_test(tc, unknown_command_and_option_exit_64);
	tcase_add_test(tc, print_config_masks_secrets);
	tcase_add_test(tc, config_file_errors_name_the_key);
	tcase_add_test(tc, docs_config_matches_tables);
	suite_add_tcase(s, tc);
	return s;
}
