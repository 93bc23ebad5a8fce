/* aredis: realtimed's one Redis connection, on the event loop.
 *
 * Owns a hiredis async context attached to the caller's event_base through
 * its own small libevent adapter (hiredis' adapters/libevent.h, plus a
 * check of the reader after every read: rbound.h), and the connection's
 * life as a state machine: resolve the host (evdns, never a blocking
 * getaddrinfo), connect with a timeout, handshake (AUTH, SELECT, SCRIPT
 * LOAD of every registered Lua script, pipelined), ready; on any failure
 * (refused, reset, EOF, a reply over the bounds, NOSCRIPT after a SCRIPT
 * FLUSH, no reply within io_timeout_ms) it drops the context, fails every
 * pending command (its callback gets a NULL reply) and reconnects after an
 * exponential backoff with jitter, forever, until aredis_free.
 *
 * Commands are pipelined: aredis_send writes into hiredis' output buffer
 * and returns; replies come back in order to each command's callback. A
 * NULL reply means the connection was lost and the command's outcome is
 * unknown (it may or may not have run): callers make commands idempotent.
 *
 * The REDIS_URL password never reaches a log (errors name host and port). */
#ifndef REALTIMED_AREDIS_H
#define REALTIMED_AREDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "buf.h"

struct event_base;

struct aredis_opts {
	const char *url;	/* REDIS_URL (copied) */
	int connect_timeout_ms; /* TCP connect + handshake */
	int io_timeout_ms;	/* oldest unanswered command: the connection is dropped */
	int backoff_first_ms;	/* reconnect delays: doubled per failure ... */
	int backoff_max_ms;	/* ... up to this, with jitter */
};

struct aredis_events {
	/* Handshake done: commands may be sent (also after every reconnect). */
	void (*on_ready)(void *ctx);
	/* A ready connection was lost; every pending callback already got NULL. */
	void (*on_down)(void *ctx, const char *why);
};

/* reply: borrowed for the call; NULL when the connection was lost. */
typedef void (*aredis_reply_fn)(void *arg, const redisReply *reply);

struct aredis;

/* NULL with the reason in err (bad URL, no memory). Does not connect. */
struct aredis *aredis_new(struct event_base *base, const struct aredis_opts *opts,
			  const struct aredis_events *events, void *ctx, char *err,
			  size_t errlen) MUSTCHECK;
/* Close (pending callbacks get NULL, on_down is not called) and free;
 * NULL-safe. Never from inside one of its callbacks. */
void aredis_free(struct aredis *r);

/* Register a Lua script (text borrowed, static) before aredis_start;
 * loaded at every connect. Returns its id, -1 when full. */
int aredis_script(struct aredis *r, const char *text);
/* The script's SHA1 as Redis computed it ("" before the first load). */
const char *aredis_script_sha(const struct aredis *r, int id);

/* Begin connecting (and keep reconnecting). */
void aredis_start(struct aredis *r);
bool aredis_is_ready(const struct aredis *r);
/* Commands sent and not yet answered. */
size_t aredis_inflight(const struct aredis *r);
/* Connections made ready, the first included. */
uint64_t aredis_connects(const struct aredis *r);
/* "redis://host:port/db", no credentials. */
const char *aredis_describe(const struct aredis *r);

/* ---- commands ---- */

/* A command being built: arguments copied into one buffer. */
struct rcmd {
	struct buf text;   /* owned: arguments back to back */
	size_t *offs;	   /* owned: start of each argument in text */
	size_t *lens;	   /* owned */
	int argc, cap;
	bool failed; /* out of memory: the command cannot be sent */
};

void rcmd_init(struct rcmd *c);
void rcmd_free(struct rcmd *c);
void rcmd_reset(struct rcmd *c);
void rcmd_add(struct rcmd *c, const char *arg, size_t len);
void rcmd_adds(struct rcmd *c, const char *arg);
void rcmd_addll(struct rcmd *c, long long v);
/* "EVALSHA <sha of script> <nkeys>". */
void rcmd_evalsha(struct rcmd *c, const struct aredis *r, int script, int nkeys);

/* Commands are formatted as RESP here (aredis.c), never by hiredis'
 * printf-based formatter: a sweep formats hundreds of thousands. */

/* Send c (it may be reset or reused at once); fn(arg, reply) later. False,
 * and fn never called, when not ready or c failed. */
bool aredis_send(struct aredis *r, struct rcmd *c, aredis_reply_fn fn, void *arg) MUSTCHECK;
/* The same for a short command of NUL-terminated arguments. */
bool aredis_sendv(struct aredis *r, aredis_reply_fn fn, void *arg, int argc,
		  const char **argv) MUSTCHECK;

/* A pipeline: commands formatted as RESP into one buffer as they are
 * added, sent together by aredis_send_pipe (a MULTI block goes whole). */
struct rpipe {
	struct buf text; /* owned: the commands back to back */
	size_t *ends;	 /* owned: where each command ends in text */
	int count, cap;
	bool failed; /* out of memory: the pipeline cannot be sent */
};

void rpipe_init(struct rpipe *p);
void rpipe_free(struct rpipe *p);
void rpipe_reset(struct rpipe *p);
/* Append c (then free to reset) as one command. */
void rpipe_add(struct rpipe *p, const struct rcmd *c);
/* Append a command of NUL-terminated arguments. */
void rpipe_addv(struct rpipe *p, int argc, const char **argv);

/* Send every command of p, in order, in one go: fn(arg, reply) gets the
 * last command's reply; the others' replies are only checked as every
 * reply is (NOSCRIPT). False, and fn never called, when not ready or p
 * failed, or when the pipeline could not be queued whole: the connection
 * is then dropped (a half-sent MULTI block must not stay open). */
bool aredis_send_pipe(struct aredis *r, const struct rpipe *p, aredis_reply_fn fn,
		      void *arg) MUSTCHECK;

/* Drop the connection at the next loop pass (and reconnect): a caller that
 * could not send the rest of a MULTI block must not leave it open. Nothing
 * more is sent on it from now on. */
void aredis_drop(struct aredis *r, const char *why);

/* A reply's integer or the integer its string holds; false otherwise. */
bool aredis_reply_ll(const redisReply *reply, long long *out);

#endif
