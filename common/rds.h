/* rds: the Redis helpers on blocking hiredis (0.14: no SSL, no RESP3).
 * Owns: REDIS_URL parsing (a pure function, rds_url_parse); a connection
 * (TCP or Unix socket, with connect and I/O timeouts, AUTH and SELECT done at
 * connect); single commands returning their reply or a reason; and pipelined
 * batches, where commands are appended without waiting and then every reply
 * is read and checked: error replies are counted and the first is reported,
 * never dropped.
 *
 * The connection is opaque (rds_new/rds_free). Passwords never leave this
 * module in a message: errors name the host, port, socket or db, not the
 * credentials. realtimed's event-loop client uses hiredis' async API on its
 * own; the URL parser is shared. */
#ifndef EV_RDS_H
#define EV_RDS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "base.h"

#define RDS_DEFAULT_PORT 6379

/* A parsed REDIS_URL. Plain value. Accepted forms:
 *   redis://host[:port][/db]
 *   redis://:password@host[:port][/db]
 *   redis://user:password@host[:port][/db]   (Redis 6 ACL user)
 *   redis://[::1]:6379/0                      (IPv6 literal in brackets)
 *   unix:///path/to/redis.sock[?db=N][&password=P][&user=U]
 *   unix://:password@/path/to/redis.sock[?db=N]
 * userinfo and password= values are percent-decoded; db is 0..1000000. */
struct rds_url {
	bool is_unix;
	char host[256]; /* TCP: host name or address, brackets removed */
	int port;	/* TCP: 1..65535, default 6379 */
	char path[256]; /* Unix: socket path */
	char user[128]; /* "" unless given (then AUTH user password) */
	char password[256];
	bool has_password; /* non-empty password given: AUTH at connect */
	int db;
};

/* Parse `url` into *out. On failure writes one line into err naming the
 * problem and the expected form ("redis URL: port '70000' is not 1..65535"),
 * never the password. Pure. */
bool rds_url_parse(const char *url, struct rds_url *out, char *err, size_t errlen) MUSTCHECK;

/* "redis://host:6379/2" or "unix:///path?db=2": the URL without credentials,
 * for logs. Returns out. */
char *rds_url_describe(const struct rds_url *url, char *out, size_t outlen);

struct rds;

/* Connect to `url` (parsed with rds_url_parse), waiting at most timeout_ms
 * to connect and then for each read or write (0: connect 5000 ms, I/O
 * unbounded). Sends AUTH when a password is given, SELECT when db != 0, and
 * PING when neither, so a returned connection has been answered. NULL with
 * the reason in err otherwise. */
struct rds *rds_new(const char *url, int timeout_ms, char *err, size_t errlen) MUSTCHECK;
/* Close and free; NULL-safe. Unread pipelined replies are discarded. */
void rds_free(struct rds *r);

/* The underlying hiredis context, borrowed (for commands this module does
 * not wrap). Do not free it; do not mix with pending pipelined commands. */
redisContext *rds_context(struct rds *r);
/* False once an I/O or protocol error has broken the connection: it only
 * reconnects through a new rds_new. */
bool rds_is_usable(const struct rds *r);

/* One command, waiting for its reply. An error reply is a failure too (its
 * text in err). Returns the reply (freeReplyObject) or NULL. */
redisReply *rds_command(struct rds *r, int argc, const char **argv, const size_t *argvlen,
			char *err, size_t errlen) MUSTCHECK;

/* ---- pipelined batches ------------------------------------------------ */

/* Queue one command (argvlen may be NULL for NUL-terminated arguments); no
 * I/O until rds_flush. Fails only on allocation or a broken connection.
 * Memory grows with the queued commands: callers flush every few thousand. */
bool rds_append(struct rds *r, int argc, const char **argv, const size_t *argvlen) MUSTCHECK;
/* Commands queued and not yet flushed. */
size_t rds_pending(const struct rds *r);

/* Called for each reply of a flush, in command order (index counts from 0
 * within the flush). The reply is borrowed for the call. */
typedef void (*rds_reply_fn)(void *arg, size_t index, const redisReply *reply);

struct rds_batch_result {
	size_t replies;		    /* replies read */
	size_t error_replies;	    /* of which error replies */
	size_t first_error_index;   /* valid when error_replies > 0 */
	char first_error[256];	    /* its text */
};

enum rds_status {
	RDS_OK,		/* every reply read, none an error */
	RDS_ERROR_REPLIES, /* every reply read; some were errors (counted in result) */
	RDS_IO_ERROR,	/* the connection failed: replies from result->replies on are lost */
};

/* Send the queued commands and read one reply per command, each passed to
 * on_reply (may be NULL) and checked. result (may be NULL) gets the counts;
 * err gets one line on anything but RDS_OK ("3 of 10000 replies were errors,
 * first at #17: WRONGTYPE ..." or the I/O reason). */
enum rds_status rds_flush(struct rds *r, rds_reply_fn on_reply, void *arg,
			  struct rds_batch_result *result, char *err, size_t errlen) MUSTCHECK;

#endif
