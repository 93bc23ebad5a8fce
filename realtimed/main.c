/* realtimed: live charger status and congestion counters into Redis. */
#include <stddef.h>
#include <stdio.h>

#include "base.h"
#include "cli.h"
#include "log.h"
#include "settings.h"

struct realtimed_settings {
	struct common_settings common;
	int poll_interval_s;
	int status_period_min;
	int sample_interval_s;
	int admin_port;
};

/* Defaults from the upstream's quotas: a poll a minute is 1,440 calls a day
 * per status page, within a registered key's quota; 5 minutes of status
 * history covers the interval plus a missed poll. */
static const struct cfg_key realtimed_keys[] = {
	{"REALTIMED_POLL_INTERVAL", CFG_INT, 1, 3600, "60", CFG_RELOAD,
	 "Seconds between getChargerStatus polls (T)",
	 offsetof(struct realtimed_settings, poll_interval_s), NULL, NULL},
	{"REALTIMED_STATUS_PERIOD", CFG_INT, 1, 1440, "5", CFG_RELOAD,
	 "Minutes of status changes asked of the upstream per poll (P); must cover T plus overlap",
	 offsetof(struct realtimed_settings, status_period_min), NULL, NULL},
	{"REALTIMED_SAMPLE_INTERVAL", CFG_INT, 10, 86400, "600", CFG_RELOAD,
	 "Seconds between congestion samples (S)",
	 offsetof(struct realtimed_settings, sample_interval_s), NULL, NULL},
	{"REALTIMED_ADMIN_PORT", CFG_INT, 0, 65535, "9102", 0,
	 "Port of the /healthz and /metrics listener on 127.0.0.1; 0 = any free port",
	 offsetof(struct realtimed_settings, admin_port), NULL, NULL},
};
static const struct cfg_table realtimed_table = {realtimed_keys, ARRAY_LEN(realtimed_keys)};
static const struct cfg_table *const realtimed_tables[] = {&common_cfg_table, &realtimed_table};
static const struct cfg_schema schema = {"realtimed", "REALTIMED_", realtimed_tables,
					 ARRAY_LEN(realtimed_tables)};

static const struct cli_spec spec = {
	.role = "realtimed",
	.summary = "stream live EV charger status and congestion counters into Redis",
	.usage = "Usage: realtimed [global options]\n\n"
		 "Exit codes:\n"
		 "  0   stopped cleanly (SIGTERM)\n"
		 "  64  bad command line\n"
		 "  69  Redis or the upstream unavailable at start\n"
		 "  78  configuration error\n",
};

int main(int argc, char **argv)
{
	struct cli cli;
	struct realtimed_settings settings = {0};
	int rc = cli_parse(&spec, argc, argv, &cli);
	if (rc >= 0)
		goto out;
	log_setup(spec.role, LOG_INFO);
	rc = cli_load_settings(&spec, &cli, &schema, &settings);
	if (rc >= 0)
		goto out;
	if (cli.nargs > 0) {
		rc = cli_usage_error(&spec, "unexpected argument '%s'", cli.args[0]);
		goto out;
	}
	if (settings.status_period_min * 60 < settings.poll_interval_s) {
		fprintf(stderr,
			"realtimed: configuration error: REALTIMED_STATUS_PERIOD: %d minutes does not "
			"cover REALTIMED_POLL_INTERVAL (%d s); expected at least %d minutes\n",
			settings.status_period_min, settings.poll_interval_s,
			(settings.poll_interval_s + 59) / 60);
		rc = EXIT_CONFIG;
		goto out;
	}
	log_error("polling is not implemented in this build yet");
	rc = EXIT_UNAVAILABLE;
out:
	cfg_free(&schema, &settings);
	cli_free(&cli);
	return rc;
}
