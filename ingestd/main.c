/* ingestd: one-shot bulk jobs started by cron or a systemd timer; the exit
 * code is the report to the scheduler. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "chargers.h"
#include "cli.h"
#include "congestion.h"
#include "export.h"
#include "log.h"
#include "migrate.h"
#include "settings.h"

struct ingestd_settings {
	struct common_settings common;
	char *migrations_dir;
	int concurrency;
	int page_size;
	int retries;
	int backoff_ms;
	int backoff_max_ms;
	int connect_timeout_ms;
	int page_timeout_seconds;
	int low_speed_seconds;
	double delete_min_ratio;
	int key_call_limit;
	char *notify_channel;
	int progress_seconds;
	int congestion_keep;
	double congestion_min_ratio;
	int congestion_batch;
	int congestion_sort_mem_mb;
	int congestion_ddl_timeout_ms;
	int congestion_redis_timeout_ms;
};

static const struct cfg_key ingestd_keys[] = {
	{"INGESTD_MIGRATIONS_DIR", CFG_STR, 0, 0, "", 0,
	 "Directory of NNNN_name.sql migrations; empty: ../migrations or "
	 "../share/evcharger/migrations beside the binary",
	 offsetof(struct ingestd_settings, migrations_dir), NULL, NULL},
	{"INGESTD_CONCURRENCY", CFG_INT, 1, 32, "4", 0,
	 "chargers: pages fetched at once (connections to the upstream)",
	 offsetof(struct ingestd_settings, concurrency), NULL, NULL},
	{"INGESTD_PAGE_SIZE", CFG_INT, 1, 9999, "9999", 0,
	 "chargers: numOfRows asked per page (9999 is the API's limit)",
	 offsetof(struct ingestd_settings, page_size), NULL, NULL},
	{"INGESTD_RETRIES", CFG_INT, 0, 20, "4", 0,
	 "chargers: retries of a failing page (timeouts, 5xx, resets, truncated or error "
	 "bodies) before the page counts as failed; each call spends quota",
	 offsetof(struct ingestd_settings, retries), NULL, NULL},
	{"INGESTD_BACKOFF_MS", CFG_INT, 1, 600000, "500", 0,
	 "chargers: wait before the first retry; doubled per retry, with jitter",
	 offsetof(struct ingestd_settings, backoff_ms), NULL, NULL},
	{"INGESTD_BACKOFF_MAX_MS", CFG_INT, 1, 3600000, "30000", 0,
	 "chargers: the longest wait between retries",
	 offsetof(struct ingestd_settings, backoff_max_ms), NULL, NULL},
	{"INGESTD_CONNECT_TIMEOUT_MS", CFG_INT, 100, 600000, "10000", 0,
	 "chargers: connecting to the upstream",
	 offsetof(struct ingestd_settings, connect_timeout_ms), NULL, NULL},
	{"INGESTD_PAGE_TIMEOUT_SECONDS", CFG_INT, 0, 86400, "300", 0,
	 "chargers: one page attempt, start to end; 0: no limit",
	 offsetof(struct ingestd_settings, page_timeout_seconds), NULL, NULL},
	{"INGESTD_LOW_SPEED_SECONDS", CFG_INT, 0, 3600, "30", 0,
	 "chargers: an attempt receiving under 1 KiB/s for this long fails; 0: off",
	 offsetof(struct ingestd_settings, low_speed_seconds), NULL, NULL},
	{"INGESTD_DELETE_MIN_RATIO", CFG_DOUBLE, 0, 1, "0.9", 0,
	 "chargers: absent chargers are marked deleted only when the complete pass holds at "
	 "least this share of the live chargers; else the run is partial",
	 offsetof(struct ingestd_settings, delete_min_ratio), NULL, NULL},
	{"INGESTD_KEY_CALL_LIMIT", CFG_INT, 0, 100000000, "0", 0,
	 "chargers: calls per service key per Korean day before moving to the next key (the "
	 "account's daily quota); 0: only the gateway's quota error moves on",
	 offsetof(struct ingestd_settings, key_call_limit), NULL, NULL},
	{"INGESTD_NOTIFY_CHANNEL", CFG_STR, 0, 63, "ingest_chargers", 0,
	 "chargers: NOTIFY channel told the run id when a load commits; empty: none",
	 offsetof(struct ingestd_settings, notify_channel), NULL, NULL},
	{"INGESTD_PROGRESS_SECONDS", CFG_INT, 1, 3600, "5", 0,
	 "chargers: seconds between progress log lines when stderr is not a terminal",
	 offsetof(struct ingestd_settings, progress_seconds), NULL, NULL},
	{"INGESTD_CONGESTION_KEEP", CFG_INT, 1, 1000, "3", 0,
	 "congestion: snapshots kept in PostgreSQL, the current one included; older ones are "
	 "dropped after each run",
	 offsetof(struct ingestd_settings, congestion_keep), NULL, NULL},
	{"INGESTD_CONGESTION_MIN_RATIO", CFG_DOUBLE, 0, 1, "0.9", 0,
	 "congestion: a snapshot with fewer chargers or samples than this share of the current "
	 "one is not made current (exit 65: Redis lost or reset?); 0: no check",
	 offsetof(struct ingestd_settings, congestion_min_ratio), NULL, NULL},
	{"INGESTD_CONGESTION_BATCH", CFG_INT, 1, 100000, "2000", 0,
	 "congestion: keys per pipelined batch of GETs (snapshot) or SETs (restore)",
	 offsetof(struct ingestd_settings, congestion_batch), NULL, NULL},
	{"INGESTD_CONGESTION_SORT_MEM_MB", CFG_INT, 1, 65536, "256", 0,
	 "congestion: maintenance_work_mem (MiB, server memory) of a snapshot's index build",
	 offsetof(struct ingestd_settings, congestion_sort_mem_mb), NULL, NULL},
	{"INGESTD_CONGESTION_DDL_TIMEOUT_MS", CFG_INT, 100, 3600000, "60000", 0,
	 "congestion: the longest wait of a snapshot's ATTACH for its lock, and of one detach "
	 "or drop of an old snapshot (then left to the next run)",
	 offsetof(struct ingestd_settings, congestion_ddl_timeout_ms), NULL, NULL},
	{"INGESTD_CONGESTION_REDIS_TIMEOUT_MS", CFG_INT, 100, 600000, "30000", 0,
	 "congestion: Redis connect and reply timeout",
	 offsetof(struct ingestd_settings, congestion_redis_timeout_ms), NULL, NULL},
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
		 "  migrate [--status]   apply pending migrations (--status: list applied and pending)\n"
		 "  chargers [--upstream URL] [--concurrency N] [--dry-run]\n"
		 "                       load the master data (getChargerInfo): every page, staged,\n"
		 "                       merged into station and charger in one transaction\n"
		 "                       --upstream URL   instead of UPSTREAM_URL\n"
		 "                       --concurrency N  instead of INGESTD_CONCURRENCY\n"
		 "                       --dry-run        fetch, stage and merge, then roll back:\n"
		 "                                        report what would change, change nothing\n"
		 "  congestion [--force] snapshot every congestion counter of Redis (REDIS_URL) into\n"
		 "                       PostgreSQL and make it current in one transaction; keep the\n"
		 "                       last INGESTD_CONGESTION_KEEP snapshots\n"
		 "                       --force          make it current even if it shrank (exit 65)\n"
		 "  congestion --restore [--replace] [--snapshot ID]\n"
		 "                       write the current (or a kept) snapshot back into Redis, byte\n"
		 "                       for byte; existing counters are kept unless --replace\n"
		 "  export --out DIR [--level N]\n"
		 "                       write the open-data dump into DIR (created if missing):\n"
		 "                       live stations and chargers (CSV, GeoJSON), the current\n"
		 "                       congestion snapshot (CSV), gzip, and manifest.json (rows,\n"
		 "                       SHA-256, source runs), replacing the old dump atomically\n"
		 "                       --level N        gzip level 1..9 (default 1)\n\n"
		 "Exit codes:\n"
		 "  0   ok\n"
		 "  64  bad command line\n"
		 "  65  chargers: partial load (pages failed after retries, or the total fell below\n"
		 "      INGESTD_DELETE_MIN_RATIO of the live chargers): loaded, nothing deleted\n"
		 "      congestion: fewer chargers or samples than INGESTD_CONGESTION_MIN_RATIO of the\n"
		 "      current snapshot: not made current\n"
		 "  66  congestion --restore: no such snapshot\n"
		 "  69  upstream unavailable (chargers: not even page 1); migrate: database unavailable\n"
		 "      congestion: Redis unavailable or failing (the current snapshot stays)\n"
		 "  70  internal error, or a migration failed\n"
		 "  73  export: DIR or a file in it cannot be created or written (the old dump stays)\n"
		 "  74  chargers: database unreachable or failed (nothing changed)\n"
		 "      congestion: the same (the current snapshot stays)\n"
		 "      export: the same (the old dump stays)\n"
		 "  75  chargers: another run is in progress (the message names it)\n"
		 "      congestion: another snapshot or restore is in progress (named)\n"
		 "      export: another export writes into DIR (its pid named)\n"
		 "  78  configuration error (a setting, a service key or URL the gateway refuses,\n"
		 "      a changed applied migration, a database not migrated)\n"
		 "  130, 143  chargers: interrupted by SIGINT, SIGTERM (nothing changed)\n"
		 "      congestion, export: the same (the current snapshot, the old dump stay)\n",
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

static int parse_int_arg(const char *text, int min, int max, int *out)
{
	char *end;
	long v = strtol(text, &end, 10);
	if (end == text || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int run_congestion(const struct ingestd_settings *settings, int nargs, char **args)
{
	struct congestion_config cfg = {
		.database_url = settings->common.database_url,
		.redis_url = settings->common.redis_url,
		.keep = settings->congestion_keep,
		.min_ratio = settings->congestion_min_ratio,
		.batch_keys = settings->congestion_batch,
		.sort_mem_mb = settings->congestion_sort_mem_mb,
		.lock_timeout_ms = settings->congestion_ddl_timeout_ms,
		.retention_timeout_ms = settings->congestion_ddl_timeout_ms,
		.redis_timeout_ms = settings->congestion_redis_timeout_ms,
		.progress_seconds = settings->progress_seconds,
	};
	bool is_snapshot_given = false;
	for (int i = 1; i < nargs; i++) {
		const char *a = args[i];
		if (!strcmp(a, "--restore")) {
			cfg.is_restore = true;
		} else if (!strcmp(a, "--replace")) {
			cfg.is_replace = true;
		} else if (!strcmp(a, "--force")) {
			cfg.is_forced = true;
		} else if (!strcmp(a, "--snapshot") || !strncmp(a, "--snapshot=", 11)) {
			const char *value = a[10] == '=' ? a + 11 : i + 1 < nargs ? args[++i] : NULL;
			if (!value || parse_int_arg(value, 1, INT_MAX, &cfg.snapshot_id) < 0)
				return cli_usage_error(&spec, "congestion: --snapshot: '%s' is not a "
							      "snapshot id",
						       value ? value : "");
			is_snapshot_given = true;
		} else {
			return cli_usage_error(&spec, "congestion: unknown option '%s'", a);
		}
	}
	if (!cfg.is_restore && (cfg.is_replace || is_snapshot_given))
		return cli_usage_error(&spec, "congestion: --replace and --snapshot need --restore");
	if (cfg.is_restore && cfg.is_forced)
		return cli_usage_error(&spec, "congestion: --force is for a snapshot, not --restore");
	return congestion_main(&cfg);
}

static int run_export(const struct ingestd_settings *settings, int nargs, char **args)
{
	struct export_config cfg = {
		.database_url = settings->common.database_url,
		.level = EXPORT_LEVEL_DEFAULT,
	};
	for (int i = 1; i < nargs; i++) {
		const char *a = args[i];
		const char *value = NULL; /* --opt VALUE or --opt=VALUE */
		bool is_out = !strcmp(a, "--out") || !strncmp(a, "--out=", 6);
		bool is_level = !strcmp(a, "--level") || !strncmp(a, "--level=", 8);
		if (is_out || is_level) {
			const char *eq = strchr(a, '=');
			value = eq ? eq + 1 : i + 1 < nargs ? args[++i] : NULL;
		}
		if (is_out && value && *value) {
			cfg.out_dir = value;
		} else if (is_level && value) {
			if (parse_int_arg(value, 1, 9, &cfg.level) < 0)
				return cli_usage_error(&spec, "export: --level: '%s' is not an "
							      "integer from 1 to 9",
						       value);
		} else {
			return cli_usage_error(&spec, "export: unknown option or missing value '%s'",
					       a);
		}
	}
	if (!cfg.out_dir)
		return cli_usage_error(&spec, "export: --out DIR is required");
	return export_main(&cfg);
}

static int run_chargers(const struct ingestd_settings *settings, int nargs, char **args)
{
	struct chargers_config cfg = {
		.database_url = settings->common.database_url,
		.upstream_url = settings->common.upstream_url,
		.keys = (const char *const *)settings->common.upstream_keys.items,
		.nkeys = settings->common.upstream_keys.count,
		.key_call_limit = settings->key_call_limit,
		.concurrency = settings->concurrency,
		.page_size = settings->page_size,
		.max_attempts = settings->retries + 1,
		.backoff_first_ms = settings->backoff_ms,
		.backoff_max_ms = settings->backoff_max_ms,
		.connect_timeout_ms = settings->connect_timeout_ms,
		.page_timeout_s = settings->page_timeout_seconds,
		.low_speed_seconds = settings->low_speed_seconds,
		.delete_min_ratio = settings->delete_min_ratio,
		.notify_channel = settings->notify_channel,
		.progress_seconds = settings->progress_seconds,
	};
	char why[256];
	for (int i = 1; i < nargs; i++) {
		const char *a = args[i];
		const char *value = NULL; /* --opt VALUE or --opt=VALUE */
		if (!strncmp(a, "--upstream", 10) || !strncmp(a, "--concurrency", 13)) {
			const char *eq = strchr(a, '=');
			value = eq ? eq + 1 : i + 1 < nargs ? args[++i] : NULL;
		}
		if (strcmp(a, "--dry-run") == 0) {
			cfg.dry_run = true;
		} else if (value && (!strcmp(a, "--upstream") || !strncmp(a, "--upstream=", 11))) {
			cfg.upstream_url = value;
			if (!cfg_check_http_url(cfg.upstream_url, why, sizeof(why)))
				return cli_usage_error(&spec, "chargers: --upstream: %s", why);
		} else if (value &&
			   (!strcmp(a, "--concurrency") || !strncmp(a, "--concurrency=", 14))) {
			if (parse_int_arg(value, 1, 32, &cfg.concurrency) < 0)
				return cli_usage_error(&spec, "chargers: --concurrency: '%s' is not "
							      "an integer from 1 to 32",
						       value);
		} else {
			return cli_usage_error(&spec, "chargers: unknown option or missing value '%s'",
					       a);
		}
	}
	return chargers_main(&cfg);
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
	} else if (strcmp(cli.args[0], "chargers") == 0) {
		rc = run_chargers(&settings, cli.nargs, cli.args);
	} else if (strcmp(cli.args[0], "congestion") == 0) {
		rc = run_congestion(&settings, cli.nargs, cli.args);
	} else if (strcmp(cli.args[0], "export") == 0) {
		rc = run_export(&settings, cli.nargs, cli.args);
	} else {
		rc = cli_usage_error(&spec, "unknown command '%s'", cli.args[0]);
	}
out_settings:
	cfg_free(&schema, &settings);
out:
	cli_free(&cli);
	return rc;
}
