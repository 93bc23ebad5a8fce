/* realtimed: live charger status and congestion counters into Redis.
 * The settings table, the command line, then service.c runs the loop. */
#include <curl/curl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "base.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "service.h"
#include "settings.h"

#define RT_KEY(name, type, min, max, def, flags, doc, field, check)                                \
	{                                                                                          \
		name, type, min, max, def, flags, doc, offsetof(struct realtimed_settings, field), \
			NULL, check                                                                \
	}

/* Defaults from the upstream's quotas: a poll a minute is 1,440 calls a day
 * per status page, within a registered key's quota; 5 minutes of status
 * history covers the interval plus missed polls. */
static const struct cfg_key realtimed_keys[] = {
	RT_KEY("REALTIMED_POLL_INTERVAL", CFG_INT, 1, 3600, "60", CFG_RELOAD,
	       "Seconds between getChargerStatus polls (T)", poll_interval_s, NULL),
	RT_KEY("REALTIMED_STATUS_PERIOD", CFG_INT, 1, 1440, "5", CFG_RELOAD,
	       "Minutes of status changes asked of the upstream per poll (P); must cover T plus "
	       "10 s of overlap",
	       status_period_min, NULL),
	RT_KEY("REALTIMED_SAMPLE_INTERVAL", CFG_INT, 1, 86400, "600", CFG_RELOAD,
	       "Seconds between congestion samples (S), at the wall-clock multiples of S",
	       sample_interval_s, NULL),
	RT_KEY("REALTIMED_SWEEP_INTERVAL", CFG_INT, 1, 604800, "86400", CFG_RELOAD,
	       "Seconds between full getChargerInfo sweeps (also done at bootstrap and after an "
	       "outage); a complete sweep removes the chargers it no longer lists",
	       sweep_interval_s, NULL),
	RT_KEY("REALTIMED_ADMIN_PORT", CFG_INT, 0, 65535, "9102", 0,
	       "Port of the /healthz and /metrics listener on 127.0.0.1; 0 = any free port",
	       admin_port, NULL),
	RT_KEY("REALTIMED_PORT_FILE", CFG_STR, 0, 4096, "", 0,
	       "File the bound admin port is written to (atomic rename); empty = none", port_file,
	       NULL),
	RT_KEY("REALTIMED_LEASE_MS", CFG_INT, 300, 600000, "15000", 0,
	       "Lease lifetime in ms; renewed every third of it; a standby takes over within "
	       "4/3 of it after the active instance dies",
	       lease_ms, NULL),
	RT_KEY("REALTIMED_CLOCK", CFG_STR, 0, 64, "system", 0,
	       "Time used for Korea-time congestion slots and lag: system, or "
	       "fixed:YYYYMMDDHHMMSS (tests, replays)",
	       clock, rtclock_check),
	RT_KEY("REALTIMED_PAGE_SIZE", CFG_INT, 1, 9999, "9999", 0,
	       "Rows asked per upstream page (numOfRows)", page_size, NULL),
	RT_KEY("REALTIMED_CONCURRENCY", CFG_INT, 1, 32, "4", 0, "Upstream pages fetched at once",
	       concurrency, NULL),
	RT_KEY("REALTIMED_RETRIES", CFG_INT, 0, 20, "3", 0,
	       "Retries of a failed upstream page (transient errors only)", retries, NULL),
	RT_KEY("REALTIMED_BACKOFF_MS", CFG_INT, 1, 600000, "500", 0,
	       "First wait before a page retry; doubled per retry, with jitter", backoff_ms, NULL),
	RT_KEY("REALTIMED_BACKOFF_MAX_MS", CFG_INT, 1, 3600000, "10000", 0,
	       "Longest wait before a page retry", backoff_max_ms, NULL),
	RT_KEY("REALTIMED_CONNECT_TIMEOUT_MS", CFG_INT, 100, 600000, "10000", 0,
	       "Upstream TCP+TLS connect timeout", connect_timeout_ms, NULL),
	RT_KEY("REALTIMED_PAGE_TIMEOUT_SECONDS", CFG_INT, 1, 3600, "120", 0,
	       "Longest time one page attempt may take", page_timeout_s, NULL),
	RT_KEY("REALTIMED_KEY_CALL_LIMIT", CFG_INT, 0, 100000000, "0", 0,
	       "Calls per service key per Korea-time day before the next key is used; 0 = only "
	       "the gateway's quota error switches keys",
	       key_call_limit, NULL),
	RT_KEY("REALTIMED_BATCH_SIZE", CFG_INT, 1, 5000, "500", 0,
	       "Charger statuses per Redis write batch (one fenced MULTI block)", batch_size, NULL),
	RT_KEY("REALTIMED_PIPELINE", CFG_INT, 1, 256, "8", 0,
	       "Write batches in flight on the Redis connection", pipeline, NULL),
	RT_KEY("REALTIMED_TOKEN_LOG", CFG_INT, 0, 1000000, "0", 0,
	       "Diagnostics: each status write batch also appends the writer's lease token to "
	       "the Redis list ev:writers, trimmed to this many entries; 0 = off",
	       token_log, NULL),
	RT_KEY("REALTIMED_REDIS_TIMEOUT_MS", CFG_INT, 100, 600000, "10000", 0,
	       "Redis connect timeout, and the longest wait for a reply before reconnecting",
	       redis_timeout_ms, NULL),
	RT_KEY("REALTIMED_DRAIN_SECONDS", CFG_INT, 1, 600, "10", 0,
	       "SIGTERM: longest wait for in-flight writes and the current sample before the "
	       "lease is released",
	       drain_s, NULL),
	RT_KEY("REALTIMED_RESTORE_INGESTD", CFG_STR, 0, 4096, "auto", 0,
	       "ingestd run as `ingestd congestion --restore` (with DATABASE_URL) when the active "
	       "instance finds a Redis that never held counters, before sampling begins; auto = "
	       "the ingestd beside realtimed; empty = never restore",
	       restore_ingestd, NULL),
};
static const struct cfg_table realtimed_table = {realtimed_keys, ARRAY_LEN(realtimed_keys)};
static const struct cfg_table *const realtimed_tables[] = {&common_cfg_table, &realtimed_table};
static const struct cfg_schema schema = {"realtimed", "REALTIMED_", realtimed_tables,
					 ARRAY_LEN(realtimed_tables)};

static const struct cli_spec spec = {
	.role = "realtimed",
	.summary = "stream live EV charger status and congestion counters into Redis",
	.usage = "Usage: realtimed [global options]\n\n"
		 "Polls getChargerStatus every REALTIMED_POLL_INTERVAL seconds into Redis (one\n"
		 "active instance per Redis: the others stand by on the lease), sweeps\n"
		 "getChargerInfo when Redis is empty or polls missed more than the status\n"
		 "window, and samples congestion counters. Redis and the upstream are retried\n"
		 "with backoff for as long as it runs. SIGHUP reloads the settings marked\n"
		 "reload; SIGTERM drains (REALTIMED_DRAIN_SECONDS), releases the lease and "
		 "exits.\n\n"
		 "Exit codes:\n"
		 "  0   stopped (SIGTERM, SIGINT)\n"
		 "  64  bad command line\n"
		 "  69  the admin port could not be bound\n"
		 "  78  configuration error\n",
};

int main(int argc, char **argv)
{
	struct cli cli;
	struct realtimed_settings *settings = calloc(1, sizeof(*settings));
	if (!settings) {
		fprintf(stderr, "realtimed: out of memory\n");
		return EXIT_SOFTWARE;
	}
	int rc = cli_parse(&spec, argc, argv, &cli);
	if (rc >= 0)
		goto out;
	log_setup(spec.role, LOG_INFO);
	rc = cli_load_settings(&spec, &cli, &schema, settings);
	if (rc >= 0)
		goto out;
	if (cli.nargs > 0) {
		rc = cli_usage_error(&spec, "unexpected argument '%s'", cli.args[0]);
		goto out;
	}
	char err[512];
	if (!service_check_settings(settings, err, sizeof(err))) {
		fprintf(stderr, "realtimed: configuration error: %s\n", err);
		rc = EXIT_CONFIG;
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialize libcurl");
		rc = EXIT_SOFTWARE;
		goto out;
	}
	/* the service owns the settings from here, also when it fails */
	struct service *service = service_new(&schema, cli.config_file, settings, err, sizeof(err));
	settings = NULL;
	if (!service) {
		log_error("%s", err);
		rc = EXIT_UNAVAILABLE;
	} else {
		rc = service_run(service);
		service_free(service);
	}
	curl_global_cleanup();
out:
	if (settings) {
		cfg_free(&schema, settings);
		free(settings);
	}
	cli_free(&cli);
	return rc;
}
