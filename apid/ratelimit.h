/* ratelimit: the optional per-client-IP request limit (429).
 * Owns a token bucket per client address: `rate` tokens a second, at most
 * `burst` held; a request takes one, and a request that finds none is
 * refused with the seconds until the next token (Retry-After). The buckets
 * live in a fixed table (`slots` entries, chosen at start: memory never
 * grows with the number of clients), direct-mapped by a hash of the address
 * and shared by every worker under striped mutexes. Two addresses that map
 * to one slot take it from each other; the newcomer starts with a full
 * bucket, so a collision can only let a client through, never refuse one
 * that stayed within its rate. */
#ifndef APID_RATELIMIT_H
#define APID_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base.h"

struct ratelimit;

/* rate <= 0: no limit (ratelimit_new returns NULL with no error: callers
 * treat NULL as "off"). burst >= 1, slots >= 1. *failed tells a failed
 * allocation from "off". */
struct ratelimit *ratelimit_new(double rate, unsigned burst, size_t slots, bool *failed) MUSTCHECK;
void ratelimit_free(struct ratelimit *rl); /* NULL-safe */

/* Take a token for `addr` at `now_ns` (CLOCK_MONOTONIC). True: go on.
 * False: refused; *retry_after_s is the whole seconds (>= 1) until a token
 * is back. A NULL limiter or address lets everything through. */
bool ratelimit_take(struct ratelimit *rl, const struct sockaddr *addr, int64_t now_ns,
		    unsigned *retry_after_s);

#endif
