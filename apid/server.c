#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "changes.h"
#include "feed.h"
#include "live.h"
#include "loader.h"
#include "log.h"
#include "portfile.h"
#include "routes.h"
#include "pgstats.h"
#include "ratelimit.h"
#include "stats.h"
#include "worker.h"

/* The live state counts as stale in answers (X-Live-State) while the
 * follower is disconnected, or has not read the stream to its end for this
 * long: a few of its XREAD rounds. */
#define LIVE_STALE_HEADER_MS 5000
/* Drain bookkeeping runs this often on each worker. */
#define DRAIN_TICK_MS 50

struct server {
	struct server_config cfg; /* strings borrowed from the caller */
	const struct meters *meters;
	int listen_fd;
	bool adopted; /* from systemd: not ours to close early */
	int port;
	atomic_uint open_connections;
	atomic_uint feed_clients;
	struct worker *workers;
	int nworkers;
	struct live *live;     /* borrowed */
	struct loader *loader; /* borrowed */
	atomic_bool has_model;
	atomic_bool draining;
	atomic_int accepting_workers; /* workers still accepting */
	atomic_int running_workers;
	bool listen_closed;
	struct ratelimit *ratelimit; /* NULL when off */
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- listening socket ---- */

static int open_listener(const struct server_config *cfg, bool *adopted, char *err, size_t errlen)
{
	int n = sd_listen_fds(1);
	if (n > 0) {
		if (n != 1 || sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			errf(err, errlen,
			     "socket activation passed %d descriptors; expected one "
			     "listening TCP socket",
			     n);
			return -1;
		}
		int fd = SD_LISTEN_FDS_START;
		int flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			errf(err, errlen, "socket activation: %s", strerror(errno));
			return -1;
		}
		*adopted = true;
		return fd;
	}
	*adopted = false;
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	char port[16];
	snprintf(port, sizeof(port), "%d", cfg->port);
	int rc = getaddrinfo(cfg->bind, port, &hints, &ai);
	if (rc != 0) {
		errf(err, errlen, "APID_BIND '%s': %s (a numeric address is expected)", cfg->bind,
		     gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		errf(err, errlen, "bind %s port %d: %s", cfg->bind, cfg->port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

struct server *server_new(const struct server_config *cfg, const struct meters *meters, char *err,
			  size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	if (!s) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	s->meters = meters;
	s->cfg.limits.open_connections = &s->open_connections;
	s->listen_fd = open_listener(cfg, &s->adopted, err, errlen);
	if (s->listen_fd < 0) {
		free(s);
		return NULL;
	}
	s->port = bound_port(s->listen_fd);
	s->nworkers = cfg->workers;
	s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
	bool rl_failed = false;
	s->ratelimit = ratelimit_new(cfg->rate_limit, cfg->rate_burst, cfg->rate_slots, &rl_failed);
	for (int i = 0; s->workers && i < s->nworkers; i++)
		s->workers[i].wake_fd = -1; /* no worker yet: server_publish only leaves `pending` */
	if (!s->workers || rl_failed) {
		close(s->listen_fd);
		free(s->workers);
		free(s);
		errf(err, errlen, "out of memory");
		return NULL;
	}
	return s;
}

int server_port(const struct server *s)
{
	return s->port;
}

void server_set_sources(struct server *s, struct live *live, struct loader *loader,
			struct feed *feed)
{
	s->live = live;
	s->loader = loader;
	s->cfg.feed = feed;
}

const struct server_config *server_config(const struct server *s)
{
	return &s->cfg;
}

struct ratelimit *server_ratelimit(const struct server *s)
{
	return s->ratelimit;
}

const struct conn_limits *server_conn_limits(const struct server *s)
{
	return &s->cfg.limits;
}

/* ---- workers ---- */

static void take_snapshot(struct worker *w)
{
	struct snap *next = atomic_exchange(&w->pending, NULL);
	if (next) {
		snap_unref(w->snap);
		w->snap = next;
	}
}

static void worker_stop_accepting(struct worker *w)
{
	if (w->bound) {
		evhttp_del_accept_socket(w->http, w->bound);
		w->bound = NULL;
		atomic_fetch_sub(&w->server->accepting_workers, 1);
	}
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	conn_drain(w);
	bool stats_busy = (w->stats && stats_pending(w->stats) > 0) || pgstats_pending(w->pgstats) > 0;
	if ((w->nconns == 0 && !stats_busy) || monotonic_ms() >= w->drain_deadline_ms) {
		if (w->nconns > 0)
			log_warn("worker %d: drain time over, closing %u connections", w->index,
				 w->nconns);
		event_base_loopexit(w->base, NULL);
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t v;
	if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("worker %d: wake read: %s", w->index, strerror(errno));
	take_snapshot(w);
	if (atomic_exchange(&w->feed_wake, false))
		changes_wake(w->changes);
	if (atomic_load(&w->stop_accepting_requested))
		worker_stop_accepting(w);
	if (atomic_exchange(&w->drain_requested, false) && !w->draining) {
		w->draining = true;
		changes_drain(w->changes); /* streams never end by themselves */
		conn_drain(w);
		w->drain_tick = event_new(w->base, -1, EV_PERSIST, on_drain_tick, w);
		struct timeval tv = {0, DRAIN_TICK_MS * 1000};
		if (w->drain_tick)
			event_add(w->drain_tick, &tv);
	}
}

static void on_request(struct evhttp_request *req, void *arg)
{
	routes_dispatch(arg, req);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "worker%d", w->index);
	log_ctx_set("thread", name);
	take_snapshot(w); /* one published before this worker ran (main waits for it) */
	event_base_dispatch(w->base);
	/* draining is over: close what is left, free everything on this thread */
	worker_stop_accepting(w);
	/* statistics and feed clients first: their answers still need their
	 * connections */
	changes_free(w->changes);
	w->changes = NULL;
	stats_free(w->stats);
	w->stats = NULL;
	pgstats_free(w->pgstats);
	w->pgstats = NULL;
	evhttp_free(w->http);
	w->http = NULL;
	event_free(w->wake_ev);
	w->wake_ev = NULL;
	if (w->drain_tick)
		event_free(w->drain_tick);
	w->drain_tick = NULL;
	free(w->scratch);
	w->scratch = NULL;
	snap_unref(w->snap);
	w->snap = NULL;
	snap_unref(atomic_exchange(&w->pending, NULL));
	buf_free(&w->out);
	free(w->by_fd);
	w->by_fd = NULL;
	event_base_free(w->base);
	w->base = NULL;
	atomic_fetch_sub(&w->server->running_workers, 1);
	return NULL;
}

static bool worker_setup(struct server *s, struct worker *w, int index, char *err, size_t errlen)
{
	w->index = index;
	w->server = s;
	w->meters = s->meters;
	w->wake_fd = -1;
	struct event_config *ec = event_config_new();
	if (ec)
		event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	w->base = ec ? event_base_new_with_config(ec) : NULL;
	if (ec)
		event_config_free(ec);
	w->http = w->base ? evhttp_new(w->base) : NULL;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!w->http || w->wake_fd < 0) {
		errf(err, errlen, "worker %d: setup failed", index);
		return false;
	}
	const struct conn_limits *lim = &s->cfg.limits;
	evhttp_set_bevcb(w->http, conn_new_bev, w);
	evhttp_set_gencb(w->http, on_request, w);
	/* conn.c enforces the real limits before evhttp parses anything;
	 * these only back them up */
	evhttp_set_max_headers_size(w->http, (ev_ssize_t)lim->scan.max_head_bytes * 2 + 1024);
	evhttp_set_max_body_size(w->http, (ev_ssize_t)lim->scan.max_body_bytes * 2 + 1024);
	evhttp_set_timeout(
		w->http,
		(lim->keepalive_timeout_ms + lim->header_timeout_ms + lim->send_timeout_ms) / 1000 +
			10);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(w->http, "application/json; charset=utf-8");
	/* the socket is already listening (backlog 0: do not listen again) and
	 * shared by every worker: not closed when a worker lets go of it */
	struct evconnlistener *listener =
		evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, s->listen_fd);
	w->bound = listener ? evhttp_bind_listener(w->http, listener) : NULL;
	w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
	if (!w->bound || !w->wake_ev || event_add(w->wake_ev, NULL) != 0) {
		if (listener && !w->bound)
			evconnlistener_free(listener);
		errf(err, errlen, "worker %d: cannot accept on the listening socket", index);
		return false;
	}
	if (s->cfg.redis_url && s->cfg.redis_url[0]) {
		w->stats = stats_new(w->base, s->cfg.redis_url, s->cfg.stats_timeout_ms, s->meters);
		if (!w->stats) {
			errf(err, errlen, "worker %d: statistics client setup failed", index);
			return false;
		}
	}
	if (s->cfg.feed && !(w->changes = changes_new(w))) {
		errf(err, errlen, "worker %d: change feed setup failed", index);
		return false;
	}
	w->pgstats = pgstats_new(w->base, s->cfg.database_url, s->cfg.stats_timeout_ms, s->meters);
	if (!w->pgstats) {
		errf(err, errlen, "worker %d: statistics fallback setup failed", index);
		return false;
	}
	atomic_fetch_add(&s->accepting_workers, 1);
	return true;
}

static void worker_cleanup_unstarted(struct worker *w)
{
	if (w->started)
		return;
	stats_free(w->stats);
	pgstats_free(w->pgstats);
	changes_free(w->changes);
	if (w->wake_ev)
		event_free(w->wake_ev);
	if (w->http)
		evhttp_free(w->http);
	if (w->base)
		event_base_free(w->base);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
}

bool server_start(struct server *s, char *err, size_t errlen)
{
	/* Bound since server_new, listening only now: with SO_REUSEPORT the
	 * kernel hands a listening socket its share of new connections at once,
	 * so an instance listens once it can answer them (main.c waits for the
	 * first read model), while the old instance takes them until then. A
	 * socket from systemd listens already; its clients wait in the backlog. */
	if (!s->adopted && listen(s->listen_fd, s->cfg.backlog) != 0) {
		errf(err, errlen, "listen on %s port %d: %s", s->cfg.bind, s->port, strerror(errno));
		return false;
	}
	for (int i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		if (!worker_setup(s, w, i, err, errlen))
			return false;
		atomic_fetch_add(&s->running_workers, 1);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			atomic_fetch_sub(&s->running_workers, 1);
			errf(err, errlen, "worker %d: %s", i, strerror(errno));
			return false;
		}
		w->started = true;
	}
	if (s->cfg.port_file && s->cfg.port_file[0] &&
	    !portfile_write(s->cfg.port_file, s->port)) {
		errf(err, errlen, "APID_PORT_FILE %s: %s", s->cfg.port_file, strerror(errno));
		return false;
	}
	return true;
}

static void wake(struct worker *w)
{
	uint64_t one = 1;
	if (w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof(one)) < 0)
		log_debug("worker %d: wake: %s", w->index, strerror(errno));
}

void server_feed_notify(void *arg)
{
	struct server *s = arg;
	for (int i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		atomic_store(&w->feed_wake, true);
		wake(w);
	}
}

atomic_uint *server_feed_clients(struct server *s)
{
	return &s->feed_clients;
}

void server_publish(void *arg, struct snap *snap)
{
	struct server *s = arg;
	for (int i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		snap_unref(atomic_exchange(&w->pending, snap_ref(snap)));
		wake(w);
	}
	snap_unref(snap);
	atomic_store(&s->has_model, true);
}

void server_begin_drain(struct server *s)
{
	atomic_store(&s->draining, true);
	metric_set(s->meters->draining, 1);
	metric_set(s->meters->ready, 0);
}

void server_stop_accepting(struct server *s, int drain_ms)
{
	int64_t deadline = monotonic_ms() + drain_ms;
	for (int i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		w->drain_deadline_ms = deadline; /* read by the worker after the wake */
		atomic_store(&w->stop_accepting_requested, true);
		atomic_store(&w->drain_requested, true);
		wake(w);
	}
}

bool server_accepting(const struct server *s)
{
	return atomic_load(&s->accepting_workers) > 0;
}

void server_close_listener(struct server *s)
{
	if (s->listen_fd >= 0 && !server_accepting(s)) {
		close(s->listen_fd);
		s->listen_fd = -1;
	}
}

bool server_workers_done(const struct server *s)
{
	return atomic_load(&s->running_workers) == 0;
}

bool server_is_draining(const struct server *s)
{
	return atomic_load(&s->draining);
}

void server_free(struct server *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		if (w->started) {
			pthread_join(w->thread, NULL);
			if (w->wake_fd >= 0)
				close(w->wake_fd);
		} else {
			worker_cleanup_unstarted(w);
		}
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	free(s->workers);
	ratelimit_free(s->ratelimit);
	free(s);
}

/* ---- readiness and metrics ---- */

bool server_has_model(const struct server *s)
{
	return atomic_load(&s->has_model);
}

bool server_loader_connected(const struct server *s)
{
	return s->loader && loader_is_connected(s->loader);
}

bool server_ready(const struct server *s, char *why, size_t whylen)
{
	if (atomic_load(&s->draining)) {
		errf(why, whylen, "draining: shutting down");
		return false;
	}
	if (!atomic_load(&s->has_model)) {
		errf(why, whylen, "read model not loaded yet (PostgreSQL %s)",
		     s->loader && loader_is_connected(s->loader) ? "reachable" : "unreachable");
		return false;
	}
	if (s->live) {
		int64_t age = live_sync_age_ms(s->live);
		if (age < 0) {
			errf(why, whylen, "live state never read (Redis unreachable)");
			return false;
		}
		if (age > s->cfg.live_stale_ms) {
			errf(why, whylen, "live state stale for %lld s (Redis %s)",
			     (long long)(age / 1000),
			     live_is_connected(s->live) ? "behind" : "unreachable");
			return false;
		}
	}
	struct feed_cursor head;
	if (s->cfg.feed && !feed_head(s->cfg.feed, &head)) {
		errf(why, whylen, "change feed history never read (Redis unreachable)");
		return false;
	}
	errf(why, whylen, "ready");
	return true;
}

bool server_live_stale(const struct server *s, int64_t *age_s)
{
	if (!s->live) {
		*age_s = -1;
		return false;
	}
	int64_t age = live_sync_age_ms(s->live);
	*age_s = age < 0 ? -1 : age / 1000;
	return age < 0 || age > LIVE_STALE_HEADER_MS || !live_is_connected(s->live);
}

bool server_metrics(const struct server *s, const struct snap *snap, struct buf *out)
{
	const struct meters *m = s->meters;
	if (snap) {
		metric_set(m->model_version, (double)snap->version);
		metric_set(m->model_run_id, (double)snap->run_id);
		metric_set(m->model_stations, snap->nstations);
		metric_set(m->model_chargers, snap->nchargers);
		metric_set(m->model_age, difftime(time(NULL), snap->built_at));
		metric_set(m->model_bytes, (double)snap->memory_bytes);
	}
	if (s->live) {
		int64_t age = live_sync_age_ms(s->live);
		metric_set(m->live_sync_age, age < 0 ? -1 : age / 1000.0);
		metric_set(m->live_connected, live_is_connected(s->live));
	}
	char why[128];
	metric_set(m->ready, server_ready(s, why, sizeof(why)));
	metric_set(m->draining, atomic_load(&s->draining));
	return metrics_write(m->registry, out);
}
