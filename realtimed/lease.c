#include "lease.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rkeys.h"

static const char renew_lua[] = "-- renew: extend the lease only while it holds our token\n"
				"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
				"  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
				"  return 1\n"
				"end\n"
				"return 0\n";

static const char release_lua[] = "-- release: delete the lease only while it holds our token\n"
				  "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
				  "  return redis.call('DEL', KEYS[1])\n"
				  "end\n"
				  "return 0\n";

/* The lease as this process sees it. */
enum lease_state {
	LEASE_STANDBY,	 /* not held: SET NX every period/3 */
	LEASE_HELD,	 /* held: renewed every period/3 */
	LEASE_RELEASING, /* SIGTERM: the release is in flight */
	LEASE_DONE,	 /* released (or given up): nothing more */
};

struct lease {
	struct event_base *base; /* borrowed */
	struct aredis *r;	 /* borrowed */
	int period_ms;
	int renew_script, release_script;
	struct lease_events events;
	void *ctx;
	enum lease_state state;
	char token[33];
	struct event *timer;   /* owned: the next try or renewal */
	int64_t confirmed_ms;  /* the send time of the last confirmed SET or renewal */
	bool request_inflight; /* a SET or renewal awaits its reply */
	uint64_t generation;   /* bumped on every state change: stale replies are ignored */
	uint64_t acquisitions;
	void (*done)(void *ctx);
	void *done_ctx;
};

/* A request's context: which generation of the lease sent it. */
struct lease_req {
	struct lease *l;
	uint64_t generation;
	int64_t sent_ms;
};

static void arm(struct lease *l, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(l->timer, &tv);
}

static int step_ms(const struct lease *l)
{
	return l->period_ms / 3 > 0 ? l->period_ms / 3 : 1;
}

/* The lease is given up once unconfirmed for this long: a sixth of the
 * period before Redis would expire it. */
static int64_t guard_ms(const struct lease *l)
{
	return l->period_ms - l->period_ms / 6;
}

/* Until the next try or renewal; a holder also wakes at its guard. */
static int next_ms(const struct lease *l)
{
	int64_t next = step_ms(l);
	if (l->state == LEASE_HELD) {
		int64_t guard = l->confirmed_ms + guard_ms(l) + 1 - monotonic_ms();
		if (guard < next)
			next = guard > 1 ? guard : 1;
	}
	return (int)next;
}

/* A fresh random token: one per term, so that the token log (and the
 * heartbeat's instance) tell a re-acquisition from a writer that never
 * stopped. */
static void new_token(struct lease *l)
{
	unsigned char raw[16];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		/* no entropy source: time, pid, address and a count still differ */
		uint64_t a = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		uint64_t b = (uint64_t)(uintptr_t)l ^ (uint64_t)monotonic_ms() ^ (l->acquisitions << 48);
		memcpy(raw, &a, 8);
		memcpy(raw + 8, &b, 8);
	}
	for (int i = 0; i < 16; i++)
		snprintf(l->token + 2 * i, 3, "%02x", raw[i]);
}

static void set_state(struct lease *l, enum lease_state next, const char *why)
{
	enum lease_state before = l->state;
	l->state = next;
	l->generation++;
	l->request_inflight = false;
	switch (next) {
	case LEASE_STANDBY:
		if (before == LEASE_HELD) {
			new_token(l);
			log_warn("lease: lost (%s); standing by", why);
			if (l->events.on_lost)
				l->events.on_lost(l->ctx, why);
		}
		break;
	case LEASE_HELD:
		l->acquisitions++;
		log_info("lease: acquired; this instance is active (token %.8s...)", l->token);
		if (l->events.on_gained)
			l->events.on_gained(l->ctx);
		break;
	case LEASE_RELEASING: break;
	case LEASE_DONE:
		evtimer_del(l->timer);
		if (l->done) {
			void (*done)(void *) = l->done;
			l->done = NULL;
			done(l->done_ctx);
		}
		break;
	default: abort();
	}
}

static struct lease_req *req_new(struct lease *l)
{
	struct lease_req *q = malloc(sizeof(*q));
	if (q)
		*q = (struct lease_req){l, l->generation, monotonic_ms()};
	return q;
}

static void on_acquire_reply(void *arg, const redisReply *reply)
{
	struct lease_req *q = arg;
	struct lease *l = q->l;
	bool current = q->generation == l->generation && l->state == LEASE_STANDBY;
	int64_t sent = q->sent_ms;
	free(q);
	if (!current)
		return;
	l->request_inflight = false;
	if (reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0) {
		l->confirmed_ms = sent;
		set_state(l, LEASE_HELD, NULL);
	} else if (reply && reply->type == REDIS_REPLY_ERROR) {
		log_warn("lease: SET NX refused: %s", reply->str);
	}
}

static void on_renew_reply(void *arg, const redisReply *reply)
{
	struct lease_req *q = arg;
	struct lease *l = q->l;
	bool current = q->generation == l->generation && l->state == LEASE_HELD;
	int64_t sent = q->sent_ms;
	free(q);
	if (!current)
		return;
	l->request_inflight = false;
	long long v;
	if (aredis_reply_ll(reply, &v) && v == 1)
		l->confirmed_ms = sent;
	else if (reply && reply->type == REDIS_REPLY_INTEGER)
		set_state(l, LEASE_STANDBY, "another instance holds it");
	/* NULL or an error: the guard in try_now gives it up in time */
}

static void try_now(struct lease *l)
{
	if (l->state == LEASE_HELD && monotonic_ms() - l->confirmed_ms > guard_ms(l)) {
		set_state(l, LEASE_STANDBY, "no renewal confirmed within the lease period");
		/* fall through: try to take it again at once */
	}
	if (l->request_inflight || !aredis_is_ready(l->r))
		return;
	struct lease_req *q = req_new(l);
	if (!q)
		return;
	char period[24];
	snprintf(period, sizeof(period), "%d", l->period_ms);
	bool sent = false;
	if (l->state == LEASE_STANDBY) {
		const char *argv[] = {"SET", RKEYS_LEASE, l->token, "NX", "PX", period};
		sent = aredis_sendv(l->r, on_acquire_reply, q, 6, argv);
	} else if (l->state == LEASE_HELD) {
		const char *argv[] = {"EVALSHA", aredis_script_sha(l->r, l->renew_script),
				      "1",	 RKEYS_LEASE,
				      l->token,	 period};
		sent = aredis_sendv(l->r, on_renew_reply, q, 6, argv);
	}
	if (sent)
		l->request_inflight = true;
	else
		free(q);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct lease *l = arg;
	switch (l->state) {
	case LEASE_STANDBY:
	case LEASE_HELD:
		try_now(l);
		arm(l, next_ms(l));
		break;
	case LEASE_RELEASING:
		set_state(l, LEASE_DONE, NULL); /* the release got no answer in time */
		break;
	case LEASE_DONE: break;
	default: abort();
	}
}

struct lease *lease_new(struct event_base *base, struct aredis *r, int period_ms,
			const struct lease_events *events, void *ctx)
{
	struct lease *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->base = base;
	l->r = r;
	l->period_ms = period_ms;
	l->events = *events;
	l->ctx = ctx;
	new_token(l);
	l->renew_script = aredis_script(r, renew_lua);
	l->release_script = aredis_script(r, release_lua);
	l->timer = evtimer_new(base, on_timer, l);
	if (l->renew_script < 0 || l->release_script < 0 || !l->timer) {
		lease_free(l);
		return NULL;
	}
	arm(l, step_ms(l));
	return l;
}

void lease_free(struct lease *l)
{
	if (!l)
		return;
	if (l->timer)
		event_free(l->timer);
	free(l);
}

void lease_redis_ready(struct lease *l)
{
	if (l->state == LEASE_STANDBY || l->state == LEASE_HELD) {
		l->request_inflight = false; /* the old connection's request is gone */
		try_now(l);
	}
}

static void on_release_reply(void *arg, const redisReply *reply)
{
	struct lease_req *q = arg;
	struct lease *l = q->l;
	bool current = q->generation == l->generation && l->state == LEASE_RELEASING;
	free(q);
	if (!current)
		return;
	long long v;
	if (aredis_reply_ll(reply, &v))
		log_info(v == 1 ? "lease: released" : "lease: already gone at release");
	else
		log_warn("lease: release not confirmed; it expires within %d ms", l->period_ms);
	set_state(l, LEASE_DONE, NULL);
}

void lease_release(struct lease *l, void (*done)(void *ctx), void *ctx)
{
	l->done = done;
	l->done_ctx = ctx;
	if (l->state != LEASE_HELD) {
		set_state(l, LEASE_DONE, NULL);
		return;
	}
	set_state(l, LEASE_RELEASING, NULL);
	struct lease_req *q = req_new(l);
	const char *argv[] = {"EVALSHA", aredis_script_sha(l->r, l->release_script), "1",
			      RKEYS_LEASE, l->token};
	if (!q || !aredis_sendv(l->r, on_release_reply, q, 5, argv)) {
		free(q);
		log_warn("lease: Redis unreachable at release; it expires within %d ms",
			 l->period_ms);
		set_state(l, LEASE_DONE, NULL);
		return;
	}
	evtimer_del(l->timer);
	arm(l, 2000);
}

int64_t lease_stamp(const struct lease *l)
{
	return monotonic_ms();
}

void lease_extended(struct lease *l, int64_t stamp)
{
	if (l->state == LEASE_HELD && stamp > l->confirmed_ms)
		l->confirmed_ms = stamp;
}

int lease_period_ms(const struct lease *l)
{
	return l->period_ms;
}

void lease_fenced(struct lease *l)
{
	if (l->state == LEASE_HELD)
		set_state(l, LEASE_STANDBY, "a write was fenced: another instance holds it");
}

bool lease_is_fenced_reply(const redisReply *reply)
{
	return reply && reply->type == REDIS_REPLY_ERROR &&
	       strncmp(reply->str, LEASE_FENCED_ERROR, strlen(LEASE_FENCED_ERROR)) == 0;
}

bool lease_is_held(const struct lease *l)
{
	return l->state == LEASE_HELD;
}

const char *lease_token(const struct lease *l)
{
	return l->token;
}

uint64_t lease_acquisitions(const struct lease *l)
{
	return l->acquisitions;
}
