/* rbound: bounds on what a Redis reply may make hiredis allocate.
 *
 * hiredis 0.14's reader trusts the protocol: "*2147483647\r\n" makes it
 * calloc 16 GiB for the element vector at once, and "$2000000000\r\n"
 * makes it buffer whatever follows until two gigabytes have arrived. Its
 * maxbuf only caps an idle buffer, and 0.14 has no maxelements. So:
 *  - the reader's reply-object functions are replaced by ones that refuse
 *    an array longer than max_elements, a reply holding more than
 *    max_total_elements elements over all its nesting levels, and a string
 *    longer than max_bulk (refusing makes the reader fail with an error,
 *    and the connection is dropped);
 *  - rbound_pending_ok, called after every read, refuses a reader that
 *    holds more unparsed bytes than max_pending (a bulk string announced
 *    long and still arriving).
 * The functions build the same redisReply objects as hiredis' defaults (they
 * call them), so freeReplyObject frees them.
 *
 * Owns nothing: the state lives in the caller's struct rbound, which must
 * outlive the reader. Not thread-safe across readers sharing one state. */
#ifndef REALTIMED_RBOUND_H
#define REALTIMED_RBOUND_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "base.h"

/* realtimed's largest replies are a SCAN page (about a thousand keys), an
 * HGETALL of one station and INFO: these leave two orders of magnitude. */
#define RBOUND_MAX_BULK		  (8u << 20)
#define RBOUND_MAX_ELEMENTS	  1000000
#define RBOUND_MAX_TOTAL_ELEMENTS 4000000
#define RBOUND_MAX_PENDING	  (RBOUND_MAX_BULK + (1u << 20))

struct rbound {
	size_t max_bulk, max_elements, max_total_elements, max_pending;
	size_t total_elements; /* of the reply being read */
	char why[128];	       /* the last refusal, "" if none */
};

/* Default limits, why cleared. */
void rbound_init(struct rbound *b);
/* Replace r's reply functions with the bounded ones, state in b. False when
 * hiredis' defaults cannot be found. */
bool rbound_install(redisReader *r, struct rbound *b) MUSTCHECK;
/* After feeding r: false (reason in b->why) when it holds more unparsed
 * bytes than b->max_pending. */
bool rbound_pending_ok(const redisReader *r, struct rbound *b) MUSTCHECK;

#endif
