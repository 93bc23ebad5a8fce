#include "meters.h"

/* Request latency buckets: from 100 us (answers from memory) to 5 s. */
static const double duration_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
					 0.05,	 0.1,	  0.25,	  0.5,	 1,	 2.5,	5};
/* Live-state and feed delay buckets: realtimed's XADD to apid's apply, or
 * to the write to a change-feed client. */
static const double delay_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60};

bool meters_setup(struct meters *m, struct metrics *r)
{
	m->registry = r;
	m->requests = metrics_counter_family(r, "apid_http_requests_total",
					     "HTTP requests answered, by route and status",
					     "route,status");
	m->durations =
		metrics_histogram_family(r, "apid_http_request_duration_seconds",
					 "Time from a request's dispatch to its answer", "route",
					 duration_bounds, ARRAY_LEN(duration_bounds));
	m->refusals = metrics_counter_family(
		r, "apid_http_refusals_total",
		"Requests or connections refused before routing (limits, malformed framing)",
		"reason");
	m->connections = metrics_gauge(r, "apid_http_connections", "Open client connections");
	m->connections_total =
		metrics_counter(r, "apid_http_connections_total", "Client connections accepted");
	struct metric_family *builds =
		metrics_counter_family(r, "apid_model_builds_total",
				       "Read-model builds from PostgreSQL, by result", "result");
	m->builds_ok = builds ? METRIC_GET(builds, "ok") : NULL;
	m->builds_failed = builds ? METRIC_GET(builds, "failed") : NULL;
	m->build_seconds = metrics_gauge(r, "apid_model_build_seconds",
					 "Duration of the last successful read-model build");
	m->model_version = metrics_gauge(r, "apid_model_version",
					 "Build number of the read model being served (0: none)");
	m->model_run_id = metrics_gauge(r, "apid_model_run_id",
					"ingest_run id of the load the served read model reflects");
	m->model_stations = metrics_gauge(r, "apid_model_stations", "Stations in the served model");
	m->model_chargers = metrics_gauge(r, "apid_model_chargers", "Chargers in the served model");
	m->model_age = metrics_gauge(r, "apid_model_age_seconds",
				     "Seconds since the served read model was built");
	m->model_bytes = metrics_gauge(r, "apid_model_bytes", "Memory held by the served model");
	m->live_connected = metrics_gauge(r, "apid_live_connected",
					  "1 while the live-state follower is connected to Redis");
	m->live_sync_age = metrics_gauge(r, "apid_live_sync_age_seconds",
					 "Seconds since the follower last read the change stream "
					 "to its end (its lag bound)");
	m->live_changes = metrics_counter(r, "apid_live_changes_total",
					  "Charger status changes applied from Redis");
	m->live_resyncs = metrics_counter(r, "apid_live_resyncs_total",
					  "Full reloads of the live state from Redis");
	m->live_apply_delay = metrics_histogram(
		r, "apid_live_apply_delay_seconds",
		"Delay from a change entering the Redis stream to apid applying it", delay_bounds,
		ARRAY_LEN(delay_bounds));
	struct metric_family *feed_clients = metrics_gauge_family(
		r, "apid_feed_clients",
		"Change-feed clients open now: event streams and waiting long-polls", "kind");
	m->feed_streams = feed_clients ? METRIC_GET(feed_clients, "stream") : NULL;
	m->feed_polls = feed_clients ? METRIC_GET(feed_clients, "long_poll") : NULL;
	m->feed_events = metrics_counter(r, "apid_feed_events_total",
					 "Changes written to change-feed clients (one per client)");
	struct metric_family *dropped = metrics_counter_family(
		r, "apid_feed_dropped_total",
		"Change-feed clients ended or refused by apid: slow_consumer (a stream 1 MiB "
		"behind), max_clients (503 at APID_FEED_MAX_CLIENTS), behind_history (a stream "
		"past the history kept)",
		"reason");
	m->feed_drop_slow = dropped ? METRIC_GET(dropped, "slow_consumer") : NULL;
	m->feed_drop_full = dropped ? METRIC_GET(dropped, "max_clients") : NULL;
	m->feed_drop_behind = dropped ? METRIC_GET(dropped, "behind_history") : NULL;
	m->feed_delay = metrics_histogram(
		r, "apid_feed_delivery_delay_seconds",
		"Delay from a status change entering the Redis stream to its write to a "
		"change-feed client it was pushed to as it came (the follower's lag plus the "
		"workers')",
		delay_bounds, ARRAY_LEN(delay_bounds));
	struct metric_family *errors = metrics_counter_family(
		r, "apid_store_errors_total", "Failed store operations, by store", "store");
	m->pg_errors = errors ? METRIC_GET(errors, "postgresql") : NULL;
	m->redis_errors = errors ? METRIC_GET(errors, "redis") : NULL;
	m->ready = metrics_gauge(r, "apid_ready", "1 while /readyz answers 200");
	m->draining = metrics_gauge(r, "apid_draining", "1 after SIGTERM, while draining");
	return m->requests && m->durations && m->refusals && m->connections &&
	       m->connections_total && m->builds_ok && m->builds_failed && m->build_seconds &&
	       m->model_version && m->model_run_id && m->model_stations && m->model_chargers &&
	       m->model_age && m->model_bytes && m->live_connected && m->live_sync_age &&
	       m->live_changes && m->live_resyncs && m->live_apply_delay && m->feed_streams &&
	       m->feed_polls && m->feed_events && m->feed_drop_slow && m->feed_drop_full &&
	       m->feed_drop_behind && m->feed_delay && m->pg_errors &&
	       m->redis_errors && m->ready && m->draining;
}
