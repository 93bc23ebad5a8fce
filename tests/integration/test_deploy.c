/* Deployment files: systemd units pass `systemd-analyze verify`, and the
 * example environment files list exactly the keys of each role's table. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"
#include "testmain.h"

static const char *const roles[] = {"ingestd", "realtimed", "apid"};

/* Copy every unit with @PREFIX@ replaced by a prefix whose bin/ holds the
 * binaries under test, so verify can check ExecStart too. */
START_TEST(units_verify)
{
	char *dir = itest_tmpdir("units");
	char prefix_bin[4096], cmd[8192];
	snprintf(prefix_bin, sizeof(prefix_bin), "%s/prefix/bin", dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", prefix_bin);
	ck_assert_int_eq(system(cmd), 0);
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		char link_path[4200];
		snprintf(link_path, sizeof(link_path), "%s/%s", prefix_bin, roles[i]);
		ck_assert_int_eq(symlink(itest_bin(roles[i]), link_path), 0);
	}
	char *src = itest_path("deploy/systemd");
	DIR *d = opendir(src);
	ck_assert_ptr_nonnull(d);
	int units = 0;
	char args[8192] = "";
	for (struct dirent *e; (e = readdir(d));) {
		const char *dot = strrchr(e->d_name, '.');
		if (!dot || (strcmp(dot, ".service") && strcmp(dot, ".socket") && strcmp(dot, ".timer")))
			continue;
		snprintf(cmd, sizeof(cmd), "sed 's|@PREFIX@|%s/prefix|g' %s/%s > %s/%s", dir, src,
			 e->d_name, dir, e->d_name);
		ck_assert_int_eq(system(cmd), 0);
		size_t used = strlen(args);
		snprintf(args + used, sizeof(args) - used, " %s", e->d_name);
		units++;
	}
	closedir(d);
	/* apid.socket+service, realtimed, three ingestd jobs with their timers */
	ck_assert_int_eq(units, 9);
	char *out = NULL;
	snprintf(cmd, sizeof(cmd), "cd %s && systemd-analyze verify%s 2>&1", dir, args);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	int rc = itest_run(argv, NULL, 60000, &out);
	ck_assert_msg(rc == 0 && strlen(out) == 0, "systemd-analyze verify (rc %d):\n%s", rc, out);
	free(out);
	free(src);
	free(dir);
}
END_TEST

START_TEST(env_examples_match_tables)
{
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "deploy/env/%s.env", roles[i]);
		char *path = itest_path(rel);
		char *example = itest_read_file(path);
		char *out = NULL;
		char bin[4096];
		snprintf(bin, sizeof(bin), "%s", itest_bin(roles[i]));
		char *argv[] = {bin, "--help-config", NULL};
		ck_assert_int_eq(itest_run(argv, NULL, 20000, &out), 0);
		/* every key of the table appears as "#KEY=" ... */
		int table_keys = 0;
		for (char *p = strstr(out, "\n| `"); p; p = strstr(p + 1, "\n| `")) {
			char key[128];
			ck_assert_int_eq(sscanf(p, "\n| `%127[A-Z0-9_]`", key), 1);
			char needle[160];
			snprintf(needle, sizeof(needle), "\n#%s=", key);
			ck_assert_msg(strstr(example, needle), "%s lacks %s: run docs/gen-config.sh", rel, key);
			table_keys++;
		}
		/* ... and the example holds no key the table lacks */
		int example_keys = 0;
		char *save = NULL;
		for (char *line = strtok_r(example, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			char key[128];
			size_t n = strspn(line + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
			if (line[0] != '#' || n == 0 || n >= sizeof(key) || line[1 + n] != '=')
				continue;
			memcpy(key, line + 1, n);
			key[n] = '\0';
			char needle[160];
			snprintf(needle, sizeof(needle), "| `%s` |", key);
			ck_assert_msg(strstr(out, needle), "%s names unknown key %s", rel, key);
			example_keys++;
		}
		ck_assert_int_gt(table_keys, 5);
		ck_assert_int_eq(example_keys, table_keys);
		free(out);
		free(example);
		free(path);
	}
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("deploy");
	TCase *tc = tcase_create("deploy");
	tcase_add_test(tc, units_verify);
	tcase_add_test(tc, env_examples_match_tables);
	suite_add_tcase(s, tc);
	return s;
}
