/* Operators' files name only metrics that exist: every metric the alert
 * rules (deploy/prometheus/alerts.yml) and the Grafana dashboard
 * (deploy/grafana/evcharger.json) use is exported by a role or by the
 * postgres_exporter queries beside them. Also runs tests/deploy/scripts.sh,
 * the rolling, blue/green and deploy scripts' test without systemd.
 *
 * "Exported" means the name is a string literal inside a metrics
 * registration call (metrics_counter/gauge/histogram[_family]) in apid/,
 * realtimed/, ingestd/ or common/. A name the code mentions elsewhere but
 * does not register yet is listed as pending and passes; a name the code
 * defines nowhere fails. Names of other exporters (up, node_*, haproxy_*)
 * are not ours to check. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "testmain.h"

#define MAX_NAMES 512

struct names {
	char *v[MAX_NAMES];
	int n;
};

static void names_add(struct names *set, const char *s, size_t len)
{
	for (int i = 0; i < set->n; i++)
		if (strlen(set->v[i]) == len && !strncmp(set->v[i], s, len))
			return;
	ck_assert_int_lt(set->n, MAX_NAMES);
	set->v[set->n++] = strndup(s, len);
}

static bool names_has(const struct names *set, const char *s)
{
	for (int i = 0; i < set->n; i++)
		if (!strcmp(set->v[i], s))
			return true;
	return false;
}

static void names_free(struct names *set)
{
	for (int i = 0; i < set->n; i++)
		free(set->v[i]);
	set->n = 0;
}

static char *slurp_rel(const char *relative)
{
	char *path = itest_path(relative);
	char *data = itest_read_file(path);
	free(path);
	return data;
}

static bool ours(const char *name)
{
	static const char *const prefixes[] = {"apid_", "realtimed_", "ingestd_", "evcharger_"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

/* Identifiers with one of our prefixes in a PromQL expression: label values
 * and strings are skipped (a quoted "apid_x" is not a metric). */
static void scan_expr(struct names *used, const char *expr, size_t len)
{
	for (size_t i = 0; i < len;) {
		char c = expr[i];
		if (c == '"' || c == '\'') {
			size_t j = i + 1;
			while (j < len && expr[j] != c)
				j += expr[j] == '\\' ? 2 : 1;
			i = j + 1;
		} else if (isalpha((unsigned char)c) || c == '_') {
			size_t j = i;
			while (j < len && (isalnum((unsigned char)expr[j]) || expr[j] == '_' || expr[j] == ':'))
				j++;
			char name[256];
			snprintf(name, sizeof(name), "%.*s", (int)(j - i), expr + i);
			if (ours(name))
				names_add(used, name, strlen(name));
			i = j;
		} else {
			i++;
		}
	}
}

/* alerts.yml: `expr: ...` and its indented continuation lines. */
static void scan_alerts(struct names *used)
{
	char *text = slurp_rel("deploy/prometheus/alerts.yml");
	int exprs = 0;
	for (char *line = strtok(text, "\n"), *in_expr = NULL; line; line = strtok(NULL, "\n")) {
		char *p = line + strspn(line, " ");
		size_t indent = (size_t)(p - line);
		if (!strncmp(p, "expr:", 5)) {
			exprs++;
			in_expr = p;
			scan_expr(used, p + 5, strlen(p + 5));
		} else if (in_expr && indent > (size_t)(in_expr - line) && *p) {
			scan_expr(used, p, strlen(p));
		} else {
			in_expr = NULL;
		}
	}
	ck_assert_int_ge(exprs, 10);
	free(text);
}

/* evcharger.json: every "expr": "..." string (JSON escapes kept; \" only
 * delimits label values, which scan_expr skips anyway). */
static void scan_dashboard(struct names *used)
{
	char *text = slurp_rel("deploy/grafana/evcharger.json");
	int exprs = 0;
	for (char *p = text; (p = strstr(p, "\"expr\""));) {
		p = strchr(p + 6, '"');
		ck_assert_ptr_nonnull(p);
		char *end = ++p;
		while (*end && *end != '"')
			end += *end == '\\' ? 2 : 1;
		char *expr = strndup(p, (size_t)(end - p));
		for (char *q = expr; *q; q++) /* \"x\" -> "x" */
			if (q[0] == '\\' && q[1] == '"')
				q[0] = ' ';
		scan_expr(used, expr, strlen(expr));
		free(expr);
		exprs++;
		p = end + 1;
	}
	ck_assert_int_ge(exprs, 10);
	free(text);
}

/* postgres_exporter queries: metric = <query>_<column> for every column
 * whose usage (next line) is not LABEL. */
static void scan_pg_queries(struct names *exported)
{
	char *text = slurp_rel("deploy/prometheus/postgres_exporter_queries.yaml");
	char query[128] = "", column[128] = "";
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *p = line + strspn(line, " ");
		size_t n = strcspn(p, ":");
		if (line[0] != ' ' && line[0] != '#' && p[n] == ':' && !p[n + 1]) {
			snprintf(query, sizeof(query), "%.*s", (int)n, p);
		} else if (!strncmp(p, "- ", 2) && p[n] == ':') {
			snprintf(column, sizeof(column), "%.*s", (int)(n - 2), p + 2);
		} else if (!strncmp(p, "usage:", 6) && *column) {
			if (!strstr(p, "LABEL")) {
				char name[300];
				snprintf(name, sizeof(name), "%s_%s", query, column);
				names_add(exported, name, strlen(name));
			}
			column[0] = '\0';
		}
	}
	free(text);
}

/* Registration calls of a role's sources; every source text is appended to
 * *all (for "is it mentioned anywhere"). */
static void scan_sources(const char *dir_rel, struct names *exported, FILE *all)
{
	char *dir_path = itest_path(dir_rel);
	DIR *d = opendir(dir_path);
	ck_assert_msg(d != NULL, "opendir %s", dir_path);
	for (struct dirent *e; (e = readdir(d));) {
		size_t len = strlen(e->d_name);
		if (len < 3 || (strcmp(e->d_name + len - 2, ".c") && strcmp(e->d_name + len - 2, ".h")))
			continue;
		char rel[512];
		snprintf(rel, sizeof(rel), "%s/%s", dir_rel, e->d_name);
		char *text = slurp_rel(rel);
		fputs(text, all);
		static const char *const calls[] = {"metrics_counter", "metrics_gauge",
						    "metrics_histogram"};
		for (size_t c = 0; c < sizeof(calls) / sizeof(calls[0]); c++) {
			for (char *p = text; (p = strstr(p, calls[c]));) {
				p += strlen(calls[c]);
				if (!strncmp(p, "_family", 7))
					p += 7;
				if (*p != '(')
					continue;
				char *stop = strchr(p, ';');
				if (!stop)
					break;
				/* The first literal of the call is the name. */
				char *q = memchr(p, '"', (size_t)(stop - p));
				if (q) {
					char *qe = strchr(q + 1, '"');
					if (qe && qe < stop)
						names_add(exported, q + 1, (size_t)(qe - q - 1));
				}
				p = stop;
			}
		}
		free(text);
	}
	closedir(d);
	free(dir_path);
}

static bool registered(const struct names *exported, const char *name)
{
	if (names_has(exported, name))
		return true;
	/* Histogram series carry a suffix on the family name. */
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	size_t len = strlen(name);
	for (size_t i = 0; i < 3; i++) {
		size_t sl = strlen(suffixes[i]);
		if (len > sl && !strcmp(name + len - sl, suffixes[i])) {
			char base[256];
			snprintf(base, sizeof(base), "%.*s", (int)(len - sl), name);
			if (names_has(exported, base))
				return true;
		}
	}
	return false;
}

START_TEST(rules_and_dashboard_name_exported_metrics)
{
	struct names used = {0}, exported = {0};
	char *sources = NULL;
	size_t sources_len = 0;
	FILE *all = open_memstream(&sources, &sources_len);
	scan_alerts(&used);
	scan_dashboard(&used);
	scan_pg_queries(&exported);
	static const char *const dirs[] = {"apid", "realtimed", "ingestd", "common"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		scan_sources(dirs[i], &exported, all);
	fclose(all);
	ck_assert_int_ge(used.n, 20);
	int missing = 0, pending = 0;
	char report[8192] = "";
	for (int i = 0; i < used.n; i++) {
		const char *name = used.v[i];
		if (registered(&exported, name))
			continue;
		size_t off = strlen(report);
		char quoted[300];
		snprintf(quoted, sizeof(quoted), "\"%s\"", name);
		if (strstr(sources, quoted)) {
			pending++;
			fprintf(stderr, "pending (in the source, not registered yet): %s\n", name);
		} else {
			missing++;
			snprintf(report + off, sizeof(report) - off, " %s", name);
		}
	}
	fprintf(stderr, "metrics named by rules and dashboard: %d, exported: %d, pending: %d, "
			"defined nowhere: %d\n",
		used.n, used.n - pending - missing, pending, missing);
	ck_assert_msg(missing == 0, "metrics the rules or the dashboard use but no code defines:%s",
		      report);
	names_free(&used);
	names_free(&exported);
	free(sources);
}
END_TEST

START_TEST(deploy_scripts)
{
	char *script = itest_path("tests/deploy/scripts.sh");
	char *out = NULL;
	char *argv[] = {script, NULL};
	int rc = itest_run(argv, NULL, 240000, &out);
	ck_assert_msg(rc == 0, "tests/deploy/scripts.sh (rc %d):\n%s", rc, out ? out : "");
	free(out);
	free(script);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("deploy_metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_test(tc, rules_and_dashboard_name_exported_metrics);
	suite_add_tcase(s, tc);
	TCase *scripts = tcase_create("scripts");
	tcase_set_timeout(scripts, 300);
	tcase_add_test(scripts, deploy_scripts);
	suite_add_tcase(s, scripts);
	return s;
}
