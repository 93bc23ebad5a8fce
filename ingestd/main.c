/* ingestd: one-shot bulk jobs started by cron or a systemd timer; the exit
 * code is the report to the scheduler. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "log.h"
#include "migrate.h"
#include "settings.h"

struct ingestd_settings {
	struct common_settings common;
	char *migrations_dir;
};

static const struct cfg_key ingestd_keys[] = {
	{"INGESTD_MIGRATIONS_DIR", CFG_STR, 0, 0, "", 0,
	 "Directory of NNNN_name.sql migrations; empty: ../migrations or "
	 "../share/evcharger/migrations beside the binary",
	 offsetof(struct ingestd_settings, migrations_dir), NULL, NULL},
};

static const struct cfg_table ingestd_table = {ingestd_keys, ARRAY_LEN(ingestd_keys)};
static const struct cfg_table *const ingestd_tables[] = {&common_cfg_table, &ingestd_table};
static const struct cfg_schema schema = {"ingestd", "INGESTD_", ingestd_tables,
					 ARRAY_LEN(ingestd_tables)};

static const struct cli_spec spec = {
	.role = "ingestd",
	.summary = "bulk-load the public EV charger data into PostgreSQL",
	.usage = "Usage: ingestd [global options] COMMAND [options]\n\n"
		 "Commands:\n"
		 "  migrate [--status]   apply pending migrations (--status: list applied and pending)\n\n"
		 "Exit codes:\n"
		 "  0   ok\n"
		 "  64  bad command line\n"
		 "  69  database or upstream unavailable\n"
		 "  70  internal error or a migration failed\n"
		 "  78  configuration error (a setting, or a changed applied migration)\n",
};

/* INGESTD_MIGRATIONS_DIR, or the first of ../migrations (a source tree) and
 * ../share/evcharger/migrations (make install) beside the binary. */
static const char *resolve_migrations_dir(const char *configured, char *buf, size_t buflen)
{
	if (configured && *configured)
		return configured;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "migrations";
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	static const char *const candidates[] = {"../migrations", "../share/evcharger/migrations"};
	for (size_t i = 0; i < ARRAY_LEN(candidates); i++) {
		snprintf(buf, buflen, "%s/%s", exe, candidates[i]);
		if (access(buf, R_OK | X_OK) == 0)
			return buf;
	}
	return "migrations";
}

static int run_migrate(const struct ingestd_settings *settings, int nargs, char **args)
{
	bool status_only = false;
	for (int i = 1; i < nargs; i++) {
		if (strcmp(args[i], "--status") == 0)
			status_only = true;
		else
			return cli_usage_error(&spec, "migrate: unknown option '%s'", args[i]);
	}
	char buf[PATH_MAX + 64];
	const char *dir = resolve_migrations_dir(settings->migrations_dir, buf, sizeof(buf));
	return migrate_main(settings->common.database_url, dir, status_only);
}

int main(int argc, char **argv)
{
	struct cli cli;
	int rc = cli_parse(&spec, argc, argv, &cli);
	if (rc >= 0)
		goto out;
	log_setup(spec.role, LOG_INFO);
	struct ingestd_settings settings = {0};
	rc = cli_load_settings(&spec, &cli, &schema, &settings);
	if (rc >= 0)
		goto out_settings;
	if (cli.nargs == 0) {
		rc = cli_usage_error(&spec, "a command is required");
	} else if (strcmp(cli.args[0], "migrate") == 0) {
		rc = run_migrate(&settings, cli.nargs, cli.args);
	} else {
		rc = cli_usage_error(&spec, "unknown command '%s'", cli.args[0]);
	}
out_settings:
	cfg_free(&schema, &settings);
out:
	cli_free(&cli);
	return rc;
}
