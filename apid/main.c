/* apid: the REST API for map clients (../shared/API.md).
 * main owns the settings, start-up order, signals and the shutdown
 * sequence; server.c, loader.c and live.c own the rest. Threads: this one
 * (signals and shutdown timers), W HTTP workers, the read-model loader and
 * the Redis change-stream follower (live state and change feed). */
#include <event2/event.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "conn.h"
#include "feed.h"
#include "live.h"
#include "loader.h"
#include "log.h"
#include "meters.h"
#include "server.h"
#include "settings.h"

struct apid_settings {
	struct common_settings common;
	int port;
	char *bind;
	char *port_file;
	int workers;
	int backlog;
	int max_connections;
	int max_header_bytes;
	int max_header_lines;
	int max_body_bytes;
	double request_timeout_s;
	double keepalive_timeout_s;
	double send_timeout_s;
	double drain_s;
	double grace_s;
	double live_stale_s;
	int redis_timeout_ms;
	int model_poll_s;
	double start_wait_s;
	char *notify_channel;
	int max_markers;
	int status_max_age_s;
	double rate_limit;
	int rate_burst;
	int rate_clients;
	int feed_max_clients;
	double feed_heartbeat_s;
	int feed_max_wait_s;
	int feed_retain;
};

#define KEY(name, type, min, max, def, flags, doc, field)                                          \
	{                                                                                          \
		name, type, min, max, def, flags, doc, offsetof(struct apid_settings, field),      \
			NULL, NULL                                                                 \
	}

static const struct cfg_key apid_keys[] = {
	KEY("APID_PORT", CFG_INT, 0, 65535, "8080", 0, "TCP port to listen on; 0 = any free port",
	    port),
	KEY("APID_BIND", CFG_STR, 0, 255, "0.0.0.0", 0, "Numeric address to listen on", bind),
	KEY("APID_PORT_FILE", CFG_STR, 0, 4096, "", 0,
	    "Write the bound port here (atomic rename) once accepting; empty: none", port_file),
	KEY("APID_WORKERS", CFG_INT, 0, 256, "0", 0, "HTTP worker threads; 0 = one per core",
	    workers),
	KEY("APID_BACKLOG", CFG_INT, 1, 65535, "511", 0, "listen(2) backlog", backlog),
	KEY("APID_START_WAIT_SECONDS", CFG_DOUBLE, 0, 600, "30", 0,
	    "At start, listen only once the first read model is loaded, waiting at most this "
	    "long (the old instance answers meanwhile); not while PostgreSQL is unreachable",
	    start_wait_s),
	KEY("APID_MAX_CONNECTIONS", CFG_INT, 1, 1000000, "4096", 0,
	    "Open client connections; past it a connection gets 503 and is closed",
	    max_connections),
	KEY("APID_MAX_HEADER_BYTES", CFG_INT, 512, 1048576, "8192", 0,
	    "Request line plus headers; larger: 431 (414 for the request line alone)",
	    max_header_bytes),
	KEY("APID_MAX_HEADER_LINES", CFG_INT, 1, 10000, "100", 0,
	    "Header lines per request; more: 431", max_header_lines),
	KEY("APID_MAX_BODY_BYTES", CFG_INT, 0, 67108864, "65536", 0,
	    "Request body (no endpoint takes one); larger: 413", max_body_bytes),
	KEY("APID_REQUEST_TIMEOUT_SECONDS", CFG_DOUBLE, 0.1, 600, "10", 0,
	    "Deadline from a request's first byte to its last (not reset by each byte): 408",
	    request_timeout_s),
	KEY("APID_KEEPALIVE_TIMEOUT_SECONDS", CFG_DOUBLE, 0.1, 3600, "60", 0,
	    "An idle keep-alive connection is closed after this", keepalive_timeout_s),
	KEY("APID_SEND_TIMEOUT_SECONDS", CFG_DOUBLE, 0.1, 600, "30", 0,
	    "A client that reads nothing of an answer for this long is cut off", send_timeout_s),
	KEY("APID_DRAIN_SECONDS", CFG_DOUBLE, 0, 600, "30", CFG_RELOAD,
	    "SIGTERM: time for open requests to finish before connections are closed", drain_s),
	KEY("APID_SHUTDOWN_GRACE_SECONDS", CFG_DOUBLE, 0, 120, "2", CFG_RELOAD,
	    "SIGTERM: /readyz answers 503 this long before the listener closes", grace_s),
	KEY("APID_LIVE_STALE_SECONDS", CFG_DOUBLE, 1, 86400, "120", 0,
	    "/readyz turns 503 when the live state from Redis is older than this", live_stale_s),
	KEY("APID_REDIS_TIMEOUT_MS", CFG_INT, 100, 60000, "2000", 0,
	    "Redis connect and command timeout (live state, statistics)", redis_timeout_ms),
	KEY("APID_MODEL_POLL_SECONDS", CFG_INT, 1, 3600, "15", 0,
	    "How often ingest_run is checked for a finished load (NOTIFY misses replicas)",
	    model_poll_s),
	KEY("APID_NOTIFY_CHANNEL", CFG_STR, 0, 63, LOADER_NOTIFY_CHANNEL, 0,
	    "LISTEN channel of ingestd's load notifications (INGESTD_NOTIFY_CHANNEL); empty: poll "
	    "only",
	    notify_channel),
	KEY("APID_MAX_MARKERS", CFG_INT, 1, 100000, "2000", 0,
	    "GET /stations refuses (400) a box with more matching stations than this", max_markers),
	KEY("APID_STATUS_MAX_AGE_SECONDS", CFG_INT, 60, 31536000, "86400", 0,
	    "A charger status whose time (upstream statUpdDt, its last change) is older than this "
	    "counts as unknown, never free: available=true, statusConfidence",
	    status_max_age_s),
	KEY("APID_RATE_LIMIT_PER_SECOND", CFG_DOUBLE, 0, 1000000, "0", 0,
	    "Requests a second per client address (token bucket); past it 429 with Retry-After; "
	    "0 = off. /healthz, /readyz and /metrics are never limited",
	    rate_limit),
	KEY("APID_RATE_LIMIT_BURST", CFG_INT, 1, 1000000, "50", 0,
	    "Requests a client may send at once before APID_RATE_LIMIT_PER_SECOND applies",
	    rate_burst),
	KEY("APID_RATE_LIMIT_CLIENTS", CFG_INT, 1, 16777216, "65536", 0,
	    "Client buckets held (fixed memory, 48 bytes each); addresses sharing one may exceed "
	    "the limit, never fall under it",
	    rate_clients),
	KEY("APID_FEED_MAX_CLIENTS", CFG_INT, 1, 1000000, "2000", 0,
	    "GET /stations/changes clients open at once (long-poll and event streams, all "
	    "workers); past it 503",
	    feed_max_clients),
	KEY("APID_FEED_HEARTBEAT_SECONDS", CFG_DOUBLE, 0.1, 300, "15", 0,
	    "An event stream with nothing to send gets a comment line this often (keeps proxies "
	    "and clients from timing it out; finds clients that left)",
	    feed_heartbeat_s),
	KEY("APID_FEED_MAX_WAIT_SECONDS", CFG_INT, 1, 600, "60", 0,
	    "Largest timeout a long-poll of /stations/changes may ask for", feed_max_wait_s),
	KEY("APID_FEED_RETAIN", CFG_INT, 1000, 10000000, "100000", 0,
	    "Charger status changes kept for /stations/changes (about 110 bytes each); an older "
	    "cursor gets 410",
	    feed_retain),
};
static const struct cfg_table apid_table = {apid_keys, ARRAY_LEN(apid_keys)};
static const struct cfg_table *const apid_tables[] = {&common_cfg_table, &apid_table};
static const struct cfg_schema schema = {"apid", "APID_", apid_tables, ARRAY_LEN(apid_tables)};

static const struct cli_spec spec = {
	.role = "apid",
	.summary = "serve the EV charger REST API to map clients",
	.usage = "Usage: apid [global options]\n\n"
		 "Signals:\n"
		 "  SIGTERM  drain: /readyz 503, stop accepting, finish requests, exit 0;\n"
		 "           a second SIGTERM exits at once\n"
		 "  SIGHUP   reload reloadable settings and rebuild the read model\n\n"
		 "Exit codes:\n"
		 "  0   stopped cleanly (SIGTERM)\n"
		 "  64  bad command line\n"
		 "  69  a store or the listening socket is unavailable\n"
		 "  70  internal error\n"
		 "  78  configuration error\n",
};

/* What the signal and timer callbacks share. */
struct app {
	struct apid_settings *settings;
	const struct cli *cli;
	struct event_base *base;
	struct server *server;
	struct loader *loader;
	struct event *grace_timer, *drain_timer;
	int terms;
};

static void loader_to_live(void *arg, struct snap *snap)
{
	live_offer(arg, snap);
}

static int ms(double seconds)
{
	return (int)lround(seconds * 1000);
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;
	server_close_listener(app->server);
	if (server_workers_done(app->server))
		event_base_loopbreak(app->base);
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;
	log_info("draining: listener closing, %.1f s for open requests", app->settings->drain_s);
	server_stop_accepting(app->server, ms(app->settings->drain_s));
	struct timeval tick = {0, 50000};
	event_add(app->drain_timer, &tick);
}

/* Before listening: wait, bounded, for the first read model, so that a new
 * instance beside the old one (SO_REUSEPORT, rolling restarts) is never
 * handed connections it can only answer with 503 "not loaded yet". Gives up
 * waiting when PostgreSQL does not answer within a second (then /readyz says
 * why) and returns false on SIGTERM/SIGINT. Runs before the event loop. */
static volatile sig_atomic_t start_signal;
static void on_start_signal(int sig)
{
	start_signal = sig;
}

static bool wait_for_first_model(const struct server *server, double max_s)
{
	struct sigaction sa = {.sa_handler = on_start_signal}, old_term, old_int;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	struct timespec t0, now, pause = {0, 20 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!server_has_model(server) && !start_signal) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		double waited = (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
		if (waited >= max_s) {
			log_warn("no read model after %.1f s: listening anyway (/readyz 503 until it loads)",
				 max_s);
			break;
		}
		if (waited >= 1.0 && !server_loader_connected(server)) {
			log_warn("PostgreSQL unreachable: listening without a read model (/readyz 503)");
			break;
		}
		nanosleep(&pause, NULL);
	}
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	return !start_signal;
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	if (++app->terms > 1) {
		log_warn("second %s: exiting now", sig == SIGINT ? "SIGINT" : "SIGTERM");
		_exit(EXIT_OK);
	}
	log_info("%s: draining (readiness off for %.1f s first)",
		 sig == SIGINT ? "SIGINT" : "SIGTERM", app->settings->grace_s);
	sd_notify(0, "STOPPING=1");
	server_begin_drain(app->server);
	struct timeval grace = {(time_t)app->settings->grace_s,
				(suseconds_t)(fmod(app->settings->grace_s, 1.0) * 1e6)};
	event_add(app->grace_timer, &grace);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	struct apid_settings fresh = {0};
	char err[512];
	extern char **environ;
	if (!cfg_load(&schema, &fresh, app->cli->config_file, environ, err, sizeof(err))) {
		log_error("SIGHUP: settings not reloaded: %s", err);
	} else {
		settings_apply_logging(&schema, &fresh);
		app->settings->drain_s = fresh.drain_s;
		app->settings->grace_s = fresh.grace_s;
		log_info("SIGHUP: settings reloaded; rebuilding the read model");
	}
	cfg_free(&schema, &fresh);
	loader_request(app->loader);
}

static void server_config_from(const struct apid_settings *st, struct server_config *sc)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	*sc = (struct server_config){
		.bind = st->bind,
		.port = st->port,
		.port_file = st->port_file,
		.workers = st->workers > 0 ? st->workers : (int)(cores > 0 ? cores : 1),
		.backlog = st->backlog,
		.limits =
			{
				.scan = {(size_t)st->max_header_bytes, (size_t)st->max_body_bytes,
					 (unsigned)st->max_header_lines},
				.header_timeout_ms = ms(st->request_timeout_s),
				.keepalive_timeout_ms = ms(st->keepalive_timeout_s),
				.send_timeout_ms = ms(st->send_timeout_s),
				.max_connections = (unsigned)st->max_connections,
			},
		.live_stale_ms = ms(st->live_stale_s),
		.redis_url = st->common.redis_url,
		.database_url = st->common.database_url,
		.stats_timeout_ms = st->redis_timeout_ms,
		.max_markers = (unsigned)st->max_markers,
		.status_max_age_s = st->status_max_age_s,
		.rate_limit = st->rate_limit,
		.rate_burst = (unsigned)st->rate_burst,
		.rate_slots = (size_t)st->rate_clients,
		.feed_max_clients = (unsigned)st->feed_max_clients,
		.feed_heartbeat_ms = ms(st->feed_heartbeat_s),
		.feed_max_wait_s = st->feed_max_wait_s,
	};
}

static int serve(struct apid_settings *st, const struct cli *cli)
{
	int rc = EXIT_UNAVAILABLE;
	struct metrics *registry = metrics_new();
	struct meters meters;
	struct app app = {.settings = st, .cli = cli};
	struct live *live = NULL;
	struct feed *feed = NULL;
	struct event *sig_term = NULL, *sig_int = NULL, *sig_hup = NULL;
	char err[512] = "";
	signal(SIGPIPE, SIG_IGN);
	/* Snapshots are a few large arrays, freed whole when replaced: a fixed
	 * mmap threshold keeps them out of the heap, so their memory goes back
	 * to the system (glibc's default threshold rises after the first big
	 * free, and the heap then keeps every old snapshot's pages). */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	/* With the threshold fixed, the trim threshold stays at its 128 KiB
	 * default: a worker whose arena top passed it gave the pages back at a
	 * free and faulted them in again at the next request. With 1,000 SSE
	 * streams open that churn cost /stations 0.4 x its requests/s
	 * (tests/bench/apid_feed.sh). An arena keeps at most 64 MiB it once used. */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	if (!registry || !meters_setup(&meters, registry) || !conn_setup()) {
		log_error("start-up failed: metrics or random token");
		rc = EXIT_SOFTWARE;
		goto out;
	}
	app.base = event_base_new();
	if (!app.base)
		goto out;
	struct server_config sc;
	server_config_from(st, &sc);
	app.server = server_new(&sc, &meters, err, sizeof(err));
	if (!app.server) {
		log_error("%s", err);
		goto out;
	}
	feed = feed_new((size_t)st->feed_retain, server_feed_notify, app.server);
	struct live_config lc = {st->common.redis_url, st->redis_timeout_ms, feed};
	live = feed ? live_start(&lc, &meters, server_publish, app.server) : NULL;
	struct loader_config lo = {st->common.database_url, st->notify_channel, st->model_poll_s,
				   feed};
	app.loader = live ? loader_start(&lo, &meters, loader_to_live, live) : NULL;
	if (!live || !feed || !app.loader) {
		log_error("start-up failed: cannot start the loader or the live-state threads");
		rc = EXIT_SOFTWARE;
		goto out;
	}
	server_set_sources(app.server, live, app.loader, feed);
	if (!wait_for_first_model(app.server, st->start_wait_s)) {
		log_info("stopped by a signal before listening");
		rc = EXIT_OK;
		goto out;
	}
	if (!server_start(app.server, err, sizeof(err))) {
		log_error("%s", err);
		goto out;
	}
	sig_term = evsignal_new(app.base, SIGTERM, on_term, &app);
	sig_int = evsignal_new(app.base, SIGINT, on_term, &app);
	sig_hup = evsignal_new(app.base, SIGHUP, on_hup, &app);
	app.grace_timer = evtimer_new(app.base, on_grace_over, &app);
	app.drain_timer = event_new(app.base, -1, EV_PERSIST, on_drain_check, &app);
	if (!sig_term || !sig_int || !sig_hup || !app.grace_timer || !app.drain_timer ||
	    event_add(sig_term, NULL) || event_add(sig_int, NULL) || event_add(sig_hup, NULL)) {
		log_error("start-up failed: signal handlers");
		rc = EXIT_SOFTWARE;
		goto out;
	}
	log_info("listening on %s port %d with %d workers", st->bind, server_port(app.server),
		 sc.workers);
	sd_notify(0, "READY=1");
	event_base_dispatch(app.base);
	log_info("drained; stopping");
	rc = EXIT_OK;
out:
	if (app.server && !server_is_draining(app.server)) {
		server_begin_drain(app.server);
		server_stop_accepting(app.server, 0);
	}
	/* the loader offers snapshots to the follower and adds runs to the
	 * feed; the follower publishes to the server and wakes its workers:
	 * stop both before the server goes. The workers read the feed and the
	 * follower's sync state until they are joined: free those after. */
	loader_stop(app.loader);
	live_stop(live);
	server_free(app.server); /* joins the workers */
	live_free(live);
	feed_free(feed);
	if (sig_term)
		event_free(sig_term);
	if (sig_int)
		event_free(sig_int);
	if (sig_hup)
		event_free(sig_hup);
	if (app.grace_timer)
		event_free(app.grace_timer);
	if (app.drain_timer)
		event_free(app.drain_timer);
	if (app.base)
		event_base_free(app.base);
	metrics_free(registry);
	return rc;
}

int main(int argc, char **argv)
{
	struct cli cli;
	struct apid_settings settings = {0};
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
	rc = serve(&settings, &cli);
out:
	cfg_free(&schema, &settings);
	cli_free(&cli);
	return rc;
}
