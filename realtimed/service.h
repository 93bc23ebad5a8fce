/* service: realtimed running: one libevent loop holding the Redis
 * connection (aredis), the lease, the charger table and its writer
 * (apply), the upstream poller (poll), the congestion sampler (congest),
 * the admin listener, signals and systemd notifications.
 *
 * Decides what the active instance does: on gaining the lease (or Redis
 * coming back) it reads ev:heartbeat and chooses: a full getChargerInfo
 * sweep when Redis holds no sweep or when the time since the last complete
 * poll exceeds what a status window reaches back (REALTIMED_STATUS_PERIOD
 * minus a margin); a re-apply of the table from memory when Redis lost its
 * data and this process has swept; else plain status polls every
 * REALTIMED_POLL_INTERVAL. The heartbeat's poll_ok_ms is written only once
 * every status of the poll is acknowledged (apply_barrier), so it never
 * claims coverage Redis does not have.
 *
 * Signals: SIGHUP reloads the configuration (fresh load, validate, swap;
 * the old one stays on error; a changed restart-only key is logged and
 * kept); SIGTERM drains (no new polls or samples, in-flight batches and the
 * current sample finish within REALTIMED_DRAIN_SECONDS, the lease is
 * released, exit 0); a second SIGTERM exits at once. */
#ifndef REALTIMED_SERVICE_H
#define REALTIMED_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"
#include "cfg.h"
#include "settings.h"

struct realtimed_settings {
	struct common_settings common;
	int poll_interval_s;   /* T */
	int status_period_min; /* P */
	int sample_interval_s; /* S */
	int sweep_interval_s;
	int admin_port;
	char *port_file;
	int lease_ms;
	char *clock;
	int page_size;
	int concurrency;
	int retries;
	int backoff_ms, backoff_max_ms;
	int connect_timeout_ms;
	int page_timeout_s;
	int key_call_limit;
	int batch_size;
	int pipeline;
	int token_log;
	int redis_timeout_ms;
	int drain_s;
	char *restore_ingestd; /* "" off, "auto" beside realtimed, or a path */
};

/* Margin between the status window and the gap it must cover: the
 * upstream's clock, the poll's own duration. */
#define SERVICE_WINDOW_MARGIN_S 5

/* Rules across keys (the window covers the interval with a margin each
 * side). False with one line in err. */
bool service_check_settings(const struct realtimed_settings *s, char *err, size_t errlen) MUSTCHECK;

struct service;

/* settings: loaded and checked; the service owns it from here (freed with
 * cfg_free(schema, ...) at reload and in service_free). config_file: the
 * --config file to reload from (NULL: none). NULL with err on a setup
 * failure (port in use...). */
struct service *service_new(const struct cfg_schema *schema, const char *config_file,
			    struct realtimed_settings *settings, char *err,
			    size_t errlen) MUSTCHECK;
/* Run the loop until SIGTERM's drain is over; the exit code. */
int service_run(struct service *s);
void service_free(struct service *s);

#endif
