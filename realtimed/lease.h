/* lease: one active realtimed at a time.
 *
 * Owns this process's random token (a new one per term) and the lease
 * state machine on
 * RKEYS_LEASE: a standby tries `SET ev:lease <token> NX PX <period>` every
 * period/3; the holder renews with a script (PEXPIRE only while the key
 * still holds its token) every period/3. The holder gives the lease up on
 * its own when a renewal has not been confirmed for period - period/6
 * (Redis unreachable: another instance may have taken it by then), when a
 * renewal finds another token, or when a fenced write reports the token
 * gone (lease_fenced). A dead holder's lease expires after one period and a
 * standby's next try (within period/3) takes it: takeover within
 * 4/3 periods, inside the two the design allows.
 *
 * Fencing: every write script realtimed runs starts with LEASE_FENCE_LUA,
 * checking KEYS[1] (the lease) against ARGV[1] (the token) and failing with
 * an error starting LEASE_FENCED_ERROR, so a paused old leader cannot
 * write after its lease was taken over.
 *
 * The owner hears of changes through on_gained/on_lost. */
#ifndef REALTIMED_LEASE_H
#define REALTIMED_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "aredis.h"
#include "base.h"

struct event_base;

/* The first statement of every fenced script. */
#define LEASE_FENCE_LUA                                                                            \
	"if redis.call('GET', KEYS[1]) ~= ARGV[1] then\n"                                          \
	"  return redis.error_reply('FENCED the lease is not held by this token')\n"               \
	"end\n"
#define LEASE_FENCED_ERROR "FENCED"

struct lease_events {
	void (*on_gained)(void *ctx);
	void (*on_lost)(void *ctx, const char *why);
};

struct lease;

/* period_ms: the lease's lifetime (PX). Registers its scripts with r: call
 * before aredis_start. */
struct lease *lease_new(struct event_base *base, struct aredis *r, int period_ms,
			const struct lease_events *events, void *ctx) MUSTCHECK;
void lease_free(struct lease *l);

/* The connection became ready: acquire or renew now. */
void lease_redis_ready(struct lease *l);
/* Stop trying (SIGTERM) and, if held, release it (DEL when it still holds
 * our token); done(ctx) when over, whatever the outcome. */
void lease_release(struct lease *l, void (*done)(void *ctx), void *ctx);
/* Write blocks extend the lease too (a PEXPIRE inside their fenced MULTI),
 * so that a renewal stuck behind them on the connection does not cost the
 * lease: lease_stamp() when the block is sent, lease_extended(stamp) when
 * its EXEC succeeded. */
int64_t lease_stamp(const struct lease *l);
void lease_extended(struct lease *l, int64_t stamp);
int lease_period_ms(const struct lease *l);

/* A fenced write was refused: the lease is not ours any more. */
void lease_fenced(struct lease *l);
/* Would an error reply mean the fence refused? */
bool lease_is_fenced_reply(const redisReply *reply);

bool lease_is_held(const struct lease *l);
/* 32 hex characters, drawn at start and again whenever the lease is lost:
 * one token per term. */
const char *lease_token(const struct lease *l);
uint64_t lease_acquisitions(const struct lease *l);

#endif
