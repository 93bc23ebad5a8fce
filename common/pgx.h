/* pgx: the PostgreSQL helpers every role uses, on blocking libpq.
 * Owns: connecting with bounded retry and exponential backoff (the conninfo
 * reaches logs only through log_redact); statements with parameters only
 * (PQexecParams; values never interpolated into SQL text), each returning its
 * result or a reason with the server's SQLSTATE; transaction helpers; the
 * advisory lock keys of every job, listed here so no two jobs collide; and
 * COPY FROM STDIN in text format with complete error handling, whose field
 * escaping is a pure function (pgx_copy_escape) testable alone.
 *
 * Connections are plain PGconn * (PQfinish to free): callers that need the
 * async API (apid) use libpq directly on the same handle. The COPY session is
 * an opaque object owned by the caller between pgx_copy_begin and
 * pgx_copy_end/pgx_copy_abort, which free it.
 *
 * Errors: fallible functions take `struct pgx_err *` (may be NULL) and fill
 * it with the SQLSTATE (empty when the failure is not the server's, e.g. a
 * lost connection) and one line of text: "ERROR 23505: duplicate key ...
 * (DETAIL: ...)". Nothing here logs except pgx_connect, which decides to
 * retry and says so. */
#ifndef EV_PGX_H
#define EV_PGX_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct pgx_err {
	char sqlstate[6]; /* "23505"; "" when not from the server */
	char msg[1024];   /* one line, no trailing newline */
};

/* ---- connect ----------------------------------------------------------- */

/* Retry bounds for pgx_connect. Zero fields take the defaults below. */
struct pgx_retry {
	int max_attempts;      /* default 5 */
	int max_total_ms;      /* default 30000: no new attempt or sleep past this */
	int first_backoff_ms;  /* default 200, doubled per attempt, +-25% jitter */
	int max_backoff_ms;    /* default 5000 */
	int connect_timeout_s; /* per attempt (libpq connect_timeout), default 10;
				  a connect_timeout in the conninfo wins */
};

enum pgx_connect_status {
	PGX_CONNECT_OK,
	PGX_CONNECT_BAD_CONNINFO, /* the URL or conninfo does not parse: configuration */
	PGX_CONNECT_REFUSED,	  /* the server said no for good (authentication,
				     unknown database or role, pg_hba): configuration */
	PGX_CONNECT_UNAVAILABLE,  /* not reachable or not ready after every attempt */
};

/* Connect to `conninfo` (a postgresql:// URI or key=value conninfo; "" means
 * libpq's defaults and PG* variables), retrying transient failures (refused,
 * timeout, "starting up", too many clients) within `retry` (NULL: defaults).
 * application_name (may be NULL) is sent unless the conninfo sets one.
 * Sets client_encoding UTF8. On success *out is the connection (PQfinish it). */
enum pgx_connect_status pgx_connect(const char *conninfo, const char *application_name,
				    const struct pgx_retry *retry, PGconn **out,
				    struct pgx_err *err) MUSTCHECK;

/* ---- statements -------------------------------------------------------- */

/* Run one statement with text parameters $1..$n (values[i] NULL = SQL NULL).
 * Returns the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK; PQclear it) or
 * NULL with the reason. */
PGresult *pgx_exec(PGconn *conn, const char *sql, int nparams, const char *const *values,
		   struct pgx_err *err) MUSTCHECK;
/* The same for a statement whose rows are not wanted; *rows_affected (may be
 * NULL) gets PQcmdTuples as a number (0 when the command reports none). */
bool pgx_cmd(PGconn *conn, const char *sql, int nparams, const char *const *values,
	     long long *rows_affected, struct pgx_err *err) MUSTCHECK;
/* One value: the first column of the only row, parsed as a 64-bit integer.
 * A missing row, NULL or non-integer is an error. */
bool pgx_query_int64(PGconn *conn, const char *sql, int nparams, const char *const *values,
		     int64_t *out, struct pgx_err *err) MUSTCHECK;

/* Run trusted SQL text that may hold several statements (a migration file),
 * through the simple query protocol. Never for text built from input: that
 * goes through pgx_exec's parameters. On error, err says where: "... (line N)"
 * when the server reports a position. */
bool pgx_exec_script(PGconn *conn, const char *sql, struct pgx_err *err) MUSTCHECK;

/* ---- transactions ------------------------------------------------------ */

bool pgx_begin(PGconn *conn, struct pgx_err *err) MUSTCHECK;
bool pgx_commit(PGconn *conn, struct pgx_err *err) MUSTCHECK;
/* Roll back if a transaction is open (also an aborted one); true when the
 * connection is idle afterwards. Safe to call on any path. */
bool pgx_rollback(PGconn *conn);
/* True while a transaction block is open (also when it failed). */
bool pgx_in_transaction(const PGconn *conn);

/* ---- advisory locks ---------------------------------------------------- */

/* Session-level advisory lock keys (pg_advisory_lock(bigint)): one per job,
 * shared by every process that runs it. "evc" in the high bytes keeps them
 * apart from other users of the same database; never reuse a value. */
enum {
	PGX_LOCK_MIGRATE = 0x65766301,	  /* ingestd migrate: one runner applies at a time */
	PGX_LOCK_CHARGERS = 0x65766302,	  /* ingestd chargers: one master-data load */
	PGX_LOCK_CONGESTION = 0x65766303, /* ingestd congestion: one snapshot load or restore */
};

/* pg_try_advisory_lock: *acquired says whether this session now holds it. */
bool pgx_lock_try(PGconn *conn, int64_t key, bool *acquired, struct pgx_err *err) MUSTCHECK;
/* pg_advisory_lock, waiting at most timeout_ms (0: no limit; a timeout is an
 * error with SQLSTATE 55P03). */
bool pgx_lock_wait(PGconn *conn, int64_t key, int timeout_ms, struct pgx_err *err) MUSTCHECK;
/* pg_advisory_unlock; false (with the reason) if this session did not hold it. */
bool pgx_unlock(PGconn *conn, int64_t key, struct pgx_err *err) MUSTCHECK;
/* The backend pid holding `key` in this database, 0 when nobody does. */
bool pgx_lock_holder(PGconn *conn, int64_t key, int *pid, struct pgx_err *err) MUSTCHECK;

/* ---- COPY FROM STDIN (text format) ------------------------------------- */

/* Bytes buffered before a PQputCopyData: large chunks keep the per-call cost
 * out of the load's profile. */
#define PGX_COPY_CHUNK (256 * 1024)
/* pgx_copy_escape's result when the input holds a NUL byte, which no text
 * value can carry. */
#define PGX_COPY_BAD_BYTE ((size_t)-1)

/* Escape one field for the text COPY format: backslash, tab, newline and CR
 * become \\ \t \n \r; every other byte passes unchanged (the server checks
 * the encoding). out must hold 2 * len bytes. Returns the bytes written, or
 * PGX_COPY_BAD_BYTE if `in` holds a NUL. Pure. */
size_t pgx_copy_escape(const char *in, size_t len, char *out);

struct pgx_copy;

/* Send `copy_sql` ("COPY t (a, b) FROM STDIN", text format) and check that
 * the server entered COPY IN. NULL with the reason otherwise. */
struct pgx_copy *pgx_copy_begin(PGconn *conn, const char *copy_sql, struct pgx_err *err) MUSTCHECK;

/* Append fields to the current row. They cannot fail one by one: the first
 * failure (a NUL byte in a value, a failed send) sticks, later appends are
 * no-ops, and pgx_copy_end_row / pgx_copy_end report it. */
void pgx_copy_field(struct pgx_copy *copy, const char *value, size_t len); /* NULL: \N */
void pgx_copy_str(struct pgx_copy *copy, const char *value); /* NUL-terminated; NULL: \N */
void pgx_copy_null(struct pgx_copy *copy);
void pgx_copy_int(struct pgx_copy *copy, long long value);
/* End the row. False once a failure has stuck (err says which). */
bool pgx_copy_end_row(struct pgx_copy *copy, struct pgx_err *err) MUSTCHECK;
/* A whole row: nfields values (NULL entries are \N), then the end of row. */
bool pgx_copy_row(struct pgx_copy *copy, int nfields, const char *const *values,
		  struct pgx_err *err) MUSTCHECK;
/* Rows ended so far. */
long long pgx_copy_rows(const struct pgx_copy *copy);

/* Flush, PQputCopyEnd, then read every result until NULL, checking each.
 * Frees copy (also on failure). True when the server accepted the data;
 * *rows (may be NULL) gets its row count. On failure err holds the server's
 * error (or the stuck local one, in which case the COPY was aborted with it),
 * and the connection is usable again unless it was lost (PQstatus says). */
bool pgx_copy_end(struct pgx_copy *copy, long long *rows, struct pgx_err *err) MUSTCHECK;
/* Abandon the COPY: PQputCopyEnd(conn, reason) makes the server fail it;
 * drains the results and frees copy. NULL-safe. */
void pgx_copy_abort(struct pgx_copy *copy, const char *reason);

#endif
