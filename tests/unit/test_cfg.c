#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "settings.h"
#include "testmain.h"

struct demo_settings {
	struct common_settings common;
	int port;
	double ratio;
	bool flag;
	char *name;
	struct cfg_list items;
	int mode;
};

static const struct cfg_key demo_keys[] = {
	{"DEMO_PORT", CFG_INT, 0, 65535, "8080", 0, "port", offsetof(struct demo_settings, port),
	 NULL, NULL},
	{"DEMO_RATIO", CFG_DOUBLE, 0, 1, "0.9", 0, "ratio", offsetof(struct demo_settings, ratio),
	 NULL, NULL},
	{"DEMO_FLAG", CFG_BOOL, 0, 0, "false", CFG_RELOAD, "flag",
	 offsetof(struct demo_settings, flag), NULL, NULL},
	{"DEMO_NAME", CFG_STR, 0, 8, "abc", 0, "name", offsetof(struct demo_settings, name), NULL,
	 NULL},
	{"DEMO_ITEMS", CFG_LIST, 0, 3, "", CFG_SECRET, "items",
	 offsetof(struct demo_settings, items), NULL, NULL},
	{"DEMO_MODE", CFG_ENUM, 0, 0, "fast", 0, "mode", offsetof(struct demo_settings, mode),
	 "slow|fast|auto", NULL},
};
static const struct cfg_table demo_table = {demo_keys, ARRAY_LEN(demo_keys)};
static const struct cfg_table *const demo_tables[] = {&common_cfg_table, &demo_table};
/* "APID_" stands in for a real role prefix so other roles' keys are known */
static const struct cfg_schema demo = {"apid", "APID_", demo_tables, ARRAY_LEN(demo_tables)};
static const struct cfg_key apid_like_keys[] = {
	{"APID_PORT", CFG_INT, 0, 65535, "8080", 0, "port", offsetof(struct demo_settings, port),
	 NULL, NULL},
};
static const struct cfg_table apid_like_table = {apid_like_keys, 1};
static const struct cfg_table *const apid_like_tables[] = {&common_cfg_table, &apid_like_table};
static const struct cfg_schema apid_like = {"apid", "APID_", apid_like_tables, 2};

static char err[512];

static bool load(const struct cfg_schema *schema, struct demo_settings *s, const char *file,
		 char *const *env)
{
	memset(s, 0, sizeof(*s));
	err[0] = '\0';
	return cfg_load(schema, s, file, env, err, sizeof(err));
}

static char *write_temp(const char *content)
{
	char *path = strdup("/tmp/test_cfg.XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

START_TEST(defaults_apply)
{
	struct demo_settings s;
	ck_assert(load(&demo, &s, NULL, NULL));
	ck_assert_int_eq(s.port, 8080);
	ck_assert_double_eq_tol(s.ratio, 0.9, 1e-12);
	ck_assert(!s.flag);
	ck_assert_str_eq(s.name, "abc");
	ck_assert_uint_eq(s.items.count, 0);
	ck_assert_int_eq(s.mode, 1);
	ck_assert_str_eq(s.common.redis_url, "redis://127.0.0.1:6379/0");
	ck_assert_int_eq(s.common.log_level, LOG_INFO);
	cfg_free(&demo, &s);
}
END_TEST

START_TEST(env_beats_file_beats_default)
{
	char *file = write_temp("# comment\nDEMO_PORT=1000\nDEMO_NAME = \"filed\"\n\nexport DEMO_FLAG=yes\n");
	char *env[] = {"DEMO_PORT=2000", "UNRELATED=1", NULL};
	struct demo_settings s;
	ck_assert_msg(load(&demo, &s, file, env), "%s", err);
	ck_assert_int_eq(s.port, 2000);
	ck_assert_str_eq(s.name, "filed");
	ck_assert(s.flag);
	cfg_free(&demo, &s);
	unlink(file);
	free(file);
}
END_TEST

START_TEST(bad_integer_names_key_and_form)
{
	char *env[] = {"DEMO_PORT=abc", NULL};
	struct demo_settings s;
	ck_assert(!load(&demo, &s, NULL, env));
	ck_assert_str_eq(err, "DEMO_PORT: 'abc' is not an integer; expected an integer from 0 to 65535");
	ck_assert_ptr_null(s.name); /* freed on failure */
}
END_TEST

START_TEST(out_of_range_refused)
{
	char *env1[] = {"DEMO_PORT=65536", NULL};
	char *env2[] = {"DEMO_RATIO=1.5", NULL};
	char *env3[] = {"DEMO_PORT=12x", NULL};
	struct demo_settings s;
	ck_assert(!load(&demo, &s, NULL, env1));
	ck_assert_ptr_nonnull(strstr(err, "DEMO_PORT: 65536 is out of range"));
	ck_assert(!load(&demo, &s, NULL, env2));
	ck_assert_ptr_nonnull(strstr(err, "DEMO_RATIO: 1.5 is out of range"));
	ck_assert(!load(&demo, &s, NULL, env3));
	ck_assert_ptr_nonnull(strstr(err, "DEMO_PORT: '12x' is not an integer"));
}
END_TEST

START_TEST(unknown_own_prefix_refused)
{
	char *env[] = {"APID_PROT=1", NULL};
	struct demo_settings s;
	ck_assert(!load(&apid_like, &s, NULL, env));
	ck_assert_str_eq(err, "APID_PROT: unknown key for apid (see --help-config)");
	char *other[] = {"INGESTD_WHATEVER=1", "PATH=/bin", NULL};
	ck_assert(load(&apid_like, &s, NULL, other));
	cfg_free(&apid_like, &s);
}
END_TEST

START_TEST(file_unknown_key_and_other_roles)
{
	char *ok = write_temp("INGESTD_X=1\nREALTIMED_Y=2\nAPID_PORT=81\n");
	char *bad = write_temp("APID_PORT=81\nDATABASE_ULR=x\n");
	char *syntax = write_temp("APID_PORT=81\njust words\n");
	struct demo_settings s;
	ck_assert_msg(load(&apid_like, &s, ok, NULL), "%s", err);
	ck_assert_int_eq(s.port, 81);
	cfg_free(&apid_like, &s);
	ck_assert(!load(&apid_like, &s, bad, NULL));
	ck_assert_ptr_nonnull(strstr(err, ":2: DATABASE_ULR: unknown key"));
	ck_assert(!load(&apid_like, &s, syntax, NULL));
	ck_assert_ptr_nonnull(strstr(err, ":2: expected KEY=VALUE"));
	ck_assert(!load(&apid_like, &s, "/nonexistent/file.env", NULL));
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/file.env"));
	unlink(ok);
	unlink(bad);
	unlink(syntax);
	free(ok);
	free(bad);
	free(syntax);
}
END_TEST

START_TEST(list_trimmed_and_bounded)
{
	char *env[] = {"DEMO_ITEMS= a , bb,c ", NULL};
	struct demo_settings s;
	ck_assert(load(&demo, &s, NULL, env));
	ck_assert_uint_eq(s.items.count, 3);
	ck_assert_str_eq(s.items.items[0], "a");
	ck_assert_str_eq(s.items.items[1], "bb");
	ck_assert_str_eq(s.items.items[2], "c");
	cfg_free(&demo, &s);
	char *empty_item[] = {"DEMO_ITEMS=a,,b", NULL};
	ck_assert(!load(&demo, &s, NULL, empty_item));
	ck_assert_ptr_nonnull(strstr(err, "DEMO_ITEMS: item 2 is empty"));
	char *too_many[] = {"DEMO_ITEMS=a,b,c,d", NULL};
	ck_assert(!load(&demo, &s, NULL, too_many));
	ck_assert_ptr_nonnull(strstr(err, "4 items; expected at most 3"));
}
END_TEST

START_TEST(enum_bool_and_string_bounds)
{
	char *env[] = {"DEMO_MODE=AUTO", "DEMO_FLAG=on", "LOG_LEVEL=debug", NULL};
	struct demo_settings s;
	ck_assert(load(&demo, &s, NULL, env));
	ck_assert_int_eq(s.mode, 2);
	ck_assert(s.flag);
	ck_assert_int_eq(s.common.log_level, LOG_DEBUG);
	cfg_free(&demo, &s);
	char *bad_enum[] = {"DEMO_MODE=quick", NULL};
	ck_assert(!load(&demo, &s, NULL, bad_enum));
	ck_assert_str_eq(err, "DEMO_MODE: 'quick' is not allowed; expected one of slow|fast|auto");
	char *bad_bool[] = {"DEMO_FLAG=maybe", NULL};
	ck_assert(!load(&demo, &s, NULL, bad_bool));
	ck_assert_str_eq(err, "DEMO_FLAG: 'maybe' is not a boolean; expected true or false");
	char *long_name[] = {"DEMO_NAME=123456789", NULL};
	ck_assert(!load(&demo, &s, NULL, long_name));
	ck_assert_str_eq(err, "DEMO_NAME: value is 9 bytes long; expected at most 8");
}
END_TEST

START_TEST(url_checks)
{
	struct demo_settings s;
	char *bad_redis[] = {"REDIS_URL=localhost:6379", NULL};
	ck_assert(!load(&demo, &s, NULL, bad_redis));
	ck_assert_ptr_nonnull(strstr(err, "REDIS_URL: 'localhost:6379' is not valid; expected redis://"));
	char *bad_up[] = {"UPSTREAM_URL=ftp://x", NULL};
	ck_assert(!load(&demo, &s, NULL, bad_up));
	ck_assert_ptr_nonnull(strstr(err, "UPSTREAM_URL"));
	char *good[] = {"REDIS_URL=unix:///run/redis.sock", "UPSTREAM_URL=http://127.0.0.1:9/B552584/EvCharger", NULL};
	ck_assert_msg(load(&demo, &s, NULL, good), "%s", err);
	cfg_free(&demo, &s);
}
END_TEST

static char *print_to_string(const struct demo_settings *s, bool reference)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (reference)
		cfg_print_reference(&demo, mem);
	else
		cfg_print(&demo, s, mem);
	fclose(mem);
	return text;
}

START_TEST(print_masks_secrets)
{
	char *env[] = {"DEMO_ITEMS=key-one-secret,key-two-secret",
		       "DATABASE_URL=postgresql://app:hunter22@db:5432/ev", NULL};
	struct demo_settings s;
	ck_assert(load(&demo, &s, NULL, env));
	char *text = print_to_string(&s, false);
	ck_assert_ptr_null(strstr(text, "key-one-secret"));
	ck_assert_ptr_null(strstr(text, "hunter22"));
	ck_assert_ptr_nonnull(strstr(text, "DEMO_ITEMS=***,***\n"));
	ck_assert_ptr_nonnull(strstr(text, "DEMO_PORT=8080\n"));
	ck_assert_ptr_nonnull(strstr(text, "DEMO_MODE=fast\n"));
	ck_assert_ptr_nonnull(strstr(text, "postgresql://app:"));
	free(text);
	cfg_free(&demo, &s);
	char *bad_secret[] = {"DEMO_ITEMS=a,,topsecretvalue", NULL};
	ck_assert(!load(&demo, &s, NULL, bad_secret));
	ck_assert_ptr_null(strstr(err, "topsecretvalue"));
}
END_TEST

START_TEST(reference_lists_every_key)
{
	char *text = print_to_string(NULL, true);
	for (size_t i = 0; i < ARRAY_LEN(demo_keys); i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), "| `%s` |", demo_keys[i].name);
		ck_assert_msg(strstr(text, needle), "missing %s", demo_keys[i].name);
	}
	ck_assert_ptr_nonnull(strstr(text, "| `DEMO_PORT` | integer | 0..65535 | `8080` | no | port |"));
	ck_assert_ptr_nonnull(strstr(text, "| `DEMO_ITEMS` | list, secret | at most 3 items | (empty) | no | items |"));
	ck_assert_ptr_nonnull(strstr(text, "| `DEMO_FLAG` | boolean | true, false | `false` | yes | flag |"));
	free(text);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("cfg");
	TCase *tc = tcase_create("cfg");
	tcase_add_test(tc, defaults_apply);
	tcase_add_test(tc, env_beats_file_beats_default);
	tcase_add_test(tc, bad_integer_names_key_and_form);
	tcase_add_test(tc, out_of_range_refused);
	tcase_add_test(tc, unknown_own_prefix_refused);
	tcase_add_test(tc, file_unknown_key_and_other_roles);
	tcase_add_test(tc, list_trimmed_and_bounded);
	tcase_add_test(tc, enum_bool_and_string_bounds);
	tcase_add_test(tc, url_checks);
	tcase_add_test(tc, print_masks_secrets);
	tcase_add_test(tc, reference_lists_every_key);
	suite_add_tcase(s, tc);
	return s;
}
