#include "pgx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- errors ------------------------------------------------------------- */

static void __attribute__((format(printf, 3, 4)))
err_set(struct pgx_err *err, const char *sqlstate, const char *fmt, ...)
{
	if (!err)
		return;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* Fold libpq's multi-line messages ("...\n\tIs the server running...") onto
 * one line: newlines and tabs become single spaces, trailing space goes. */
static void one_line(char *text)
{
	char *out = text;
	bool last_space = false;
	for (const char *p = text; *p; p++) {
		char c = *p;
		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		if (c == ' ' && last_space)
			continue;
		last_space = c == ' ';
		*out++ = c;
	}
	while (out > text && out[-1] == ' ')
		out--;
	*out = '\0';
}

/* The connection's last error (not the server's: no SQLSTATE). */
static void err_from_conn(struct pgx_err *err, const PGconn *conn, const char *what)
{
	if (!err)
		return;
	const char *msg = conn ? PQerrorMessage(conn) : "";
	if (!msg || !*msg)
		msg = conn && PQstatus(conn) == CONNECTION_BAD ? "connection lost" : "unknown error";
	err_set(err, "", "%s: %s", what, msg);
	one_line(err->msg);
}

/* Character offset (1-based, as the server counts) to a line number. */
static int line_of_position(const char *sql, long position)
{
	int line = 1;
	long chars = 0;
	for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
		if ((*p & 0xc0) == 0x80)
			continue; /* UTF-8 continuation byte: same character */
		if (++chars >= position)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

/* A failed result: "ERROR 23505: message (DETAIL: ...) (line N)". `sql`, when
 * given, turns the server's statement position into a line number. */
static void err_from_result(struct pgx_err *err, const PGresult *res, const PGconn *conn,
			    const char *sql)
{
	if (!err)
		return;
	if (!res) {
		err_from_conn(err, conn, "no result");
		return;
	}
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (!primary) {
		const char *msg = PQresultErrorMessage(res);
		if (!msg || !*msg)
			msg = PQresStatus(PQresultStatus(res));
		err_set(err, sqlstate, "%s", msg);
		one_line(err->msg);
		return;
	}
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *context = PQresultErrorField(res, PG_DIAG_CONTEXT);
	const char *position = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	char where[48] = "";
	if (sql && position)
		snprintf(where, sizeof(where), " (line %d)", line_of_position(sql, atol(position)));
	err_set(err, sqlstate, "%s %s: %s%s%s%s%s%s%s%s", severity ? severity : "ERROR",
		sqlstate ? sqlstate : "?????", primary, detail ? " (DETAIL: " : "",
		detail ? detail : "", detail ? ")" : "", hint ? " (HINT: " : "", hint ? hint : "",
		hint ? ")" : "", where);
	if (context && strlen(err->msg) + 16 < sizeof(err->msg)) {
		size_t used = strlen(err->msg);
		snprintf(err->msg + used, sizeof(err->msg) - used, " (CONTEXT: %s)", context);
	}
	one_line(err->msg);
}

/* ---- connect ------------------------------------------------------------ */

static void notice_receiver(void *arg, const PGresult *res)
{
	(void)arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (!msg)
		return;
	/* Migrations and IF NOT EXISTS chatter are NOTICEs: debug. A WARNING
	 * (unlocking a lock not held, a deprecated setting) deserves a look. */
	if (severity && strcmp(severity, "WARNING") == 0)
		log_warn("postgres: %s", msg);
	else if (severity && strcmp(severity, "INFO") == 0)
		log_info("postgres: %s", msg);
	else
		log_debug("postgres: %s: %s", severity ? severity : "NOTICE", msg);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Failures that another attempt will not fix: the server answered and said
 * no. libpq gives no SQLSTATE for a failed connection, so this reads the
 * (English, lc_messages C) message; anything unrecognised counts as
 * transient, which costs at most the retry bound. */
static bool is_permanent_failure(PGconn *conn)
{
	if (PQconnectionNeedsPassword(conn))
		return true;
	static const char *const permanent[] = {
		"password authentication failed",
		"authentication failed",
		"does not exist",
		"no pg_hba.conf entry",
		"permission denied",
		"is not permitted to log in",
		"server does not support SSL",
		"invalid ",
	};
	const char *msg = PQerrorMessage(conn);
	for (size_t i = 0; msg && i < ARRAY_LEN(permanent); i++)
		if (strstr(msg, permanent[i]))
			return true;
	return false;
}

enum pgx_connect_status pgx_connect(const char *conninfo, const char *application_name,
				    const struct pgx_retry *retry, PGconn **out,
				    struct pgx_err *err)
{
	*out = NULL;
	if (!conninfo)
		conninfo = "";

	struct pgx_retry r = retry ? *retry : (struct pgx_retry){0};
	if (r.max_attempts <= 0)
		r.max_attempts = 5;
	if (r.max_total_ms <= 0)
		r.max_total_ms = 30000;
	if (r.first_backoff_ms <= 0)
		r.first_backoff_ms = 200;
	if (r.max_backoff_ms <= 0)
		r.max_backoff_ms = 5000;
	if (r.connect_timeout_s <= 0)
		r.connect_timeout_s = 10;

	char redacted[512];
	log_redact(conninfo[0] ? conninfo : "(libpq defaults)", redacted, sizeof(redacted));

	/* A conninfo that does not parse is a configuration error: no retry. The
	 * parser's message can quote a fragment of the text, so it is redacted. */
	char *parse_error = NULL;
	PQconninfoOption *parsed = PQconninfoParse(conninfo, &parse_error);
	if (!parsed) {
		char why[256];
		log_redact(parse_error ? parse_error : "out of memory", why, sizeof(why));
		err_set(err, "", "invalid connection string %s: %s", redacted, why);
		one_line(err->msg);
		PQfreemem(parse_error);
		return PGX_CONNECT_BAD_CONNINFO;
	}
	PQconninfoFree(parsed);

	int64_t start = monotonic_ms();
	int64_t deadline = start + r.max_total_ms;
	int64_t backoff = r.first_backoff_ms;
	unsigned seed = (unsigned)start ^ (unsigned)getpid();
	char attempt_error[512] = "";

	for (int attempt = 1;; attempt++) {
		/* Keep one attempt inside the total bound (libpq's minimum is 2 s).
		 * Keywords before dbname are defaults the conninfo may override;
		 * client_encoding after it is ours to fix. */
		int64_t remaining_s = (deadline - monotonic_ms() + 999) / 1000;
		int timeout_s = r.connect_timeout_s;
		if (remaining_s < timeout_s)
			timeout_s = remaining_s < 2 ? 2 : (int)remaining_s;
		char timeout_text[16];
		snprintf(timeout_text, sizeof(timeout_text), "%d", timeout_s);
		const char *keywords[] = {"connect_timeout", "application_name", "dbname",
					  "client_encoding", NULL};
		const char *values[] = {timeout_text, application_name ? application_name : "",
					conninfo, "UTF8", NULL};
		PGconn *conn = PQconnectdbParams(keywords, values, 1);
		if (!conn) {
			err_set(err, "", "connect to %s: out of memory", redacted);
			return PGX_CONNECT_UNAVAILABLE;
		}
		if (PQstatus(conn) == CONNECTION_OK) {
			PQsetNoticeReceiver(conn, notice_receiver, NULL);
			*out = conn;
			return PGX_CONNECT_OK;
		}

		snprintf(attempt_error, sizeof(attempt_error), "%s", PQerrorMessage(conn));
		one_line(attempt_error);
		bool permanent = is_permanent_failure(conn);
		PQfinish(conn);
		if (permanent) {
			err_set(err, "", "connect to %s refused: %s", redacted, attempt_error);
			return PGX_CONNECT_REFUSED;
		}

		/* Exponential backoff with +-25% jitter, so restarted peers do not
		 * reconnect in lockstep; never sleeping past the deadline. */
		int64_t jitter = backoff / 4;
		int64_t delay = backoff - jitter + (jitter > 0 ? rand_r(&seed) % (2 * jitter + 1) : 0);
		int64_t elapsed = monotonic_ms() - start;
		if (attempt >= r.max_attempts || monotonic_ms() + delay >= deadline) {
			err_set(err, "", "connect to %s failed after %d attempt%s in %" PRId64 " ms: %s",
				redacted, attempt, attempt == 1 ? "" : "s", elapsed, attempt_error);
			return PGX_CONNECT_UNAVAILABLE;
		}
		log_warn("postgres: connect to %s failed (attempt %d of %d): %s; retrying in %" PRId64
			 " ms",
			 redacted, attempt, r.max_attempts, attempt_error, delay);
		sleep_ms(delay);
		backoff *= 2;
		if (backoff > r.max_backoff_ms)
			backoff = r.max_backoff_ms;
	}
}

/* ---- statements --------------------------------------------------------- */

PGresult *pgx_exec(PGconn *conn, const char *sql, int nparams, const char *const *values,
		   struct pgx_err *err)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
	ExecStatusType status = PQresultStatus(res);
	if (res && (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK))
		return res;
	err_from_result(err, res, conn, NULL);
	PQclear(res);
	return NULL;
}

bool pgx_cmd(PGconn *conn, const char *sql, int nparams, const char *const *values,
	     long long *rows_affected, struct pgx_err *err)
{
	PGresult *res = pgx_exec(conn, sql, nparams, values, err);
	if (!res)
		return false;
	if (rows_affected) {
		const char *tuples = PQcmdTuples(res);
		*rows_affected = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
	}
	PQclear(res);
	return true;
}

bool pgx_query_int64(PGconn *conn, const char *sql, int nparams, const char *const *values,
		     int64_t *out, struct pgx_err *err)
{
	PGresult *res = pgx_exec(conn, sql, nparams, values, err);
	if (!res)
		return false;
	bool ok = false;
	if (PQntuples(res) != 1 || PQnfields(res) < 1) {
		err_set(err, "", "expected one row, got %d", PQntuples(res));
	} else if (PQgetisnull(res, 0, 0)) {
		err_set(err, "", "expected an integer, got NULL");
	} else {
		const char *text = PQgetvalue(res, 0, 0);
		char *end;
		errno = 0;
		long long value = strtoll(text, &end, 10);
		if (errno || end == text || *end) {
			err_set(err, "", "expected an integer, got '%.40s'", text);
		} else {
			*out = value;
			ok = true;
		}
	}
	PQclear(res);
	return ok;
}

bool pgx_exec_script(PGconn *conn, const char *sql, struct pgx_err *err)
{
	/* PQexec returns the last statement's result, or the first failure's
	 * (the rest of the string is not run). */
	PGresult *res = PQexec(conn, sql);
	ExecStatusType status = PQresultStatus(res);
	bool ok = res && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ||
			  status == PGRES_EMPTY_QUERY);
	if (!ok) {
		if (res && (status == PGRES_COPY_IN || status == PGRES_COPY_OUT)) {
			err_set(err, "", "COPY is not allowed in a script");
			/* Leave COPY mode so the connection stays usable. */
			if (status == PGRES_COPY_IN)
				(void)PQputCopyEnd(conn, "COPY is not allowed in a script");
			else {
				char *row;
				while (PQgetCopyData(conn, &row, 0) > 0)
					PQfreemem(row);
			}
			PGresult *rest;
			while ((rest = PQgetResult(conn)) != NULL)
				PQclear(rest);
		} else {
			err_from_result(err, res, conn, sql);
		}
	}
	PQclear(res);
	return ok;
}

/* ---- transactions ------------------------------------------------------- */

bool pgx_begin(PGconn *conn, struct pgx_err *err)
{
	return pgx_cmd(conn, "BEGIN", 0, NULL, NULL, err);
}

bool pgx_commit(PGconn *conn, struct pgx_err *err)
{
	PGresult *res = pgx_exec(conn, "COMMIT", 0, NULL, err);
	if (!res)
		return false;
	/* COMMIT of a failed transaction "succeeds" with the tag ROLLBACK. */
	bool ok = strcmp(PQcmdStatus(res), "COMMIT") == 0;
	if (!ok)
		err_set(err, "25P02", "COMMIT rolled back: the transaction had failed");
	PQclear(res);
	return ok;
}

bool pgx_rollback(PGconn *conn)
{
	PGTransactionStatusType ts = PQtransactionStatus(conn);
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(conn, "ROLLBACK"));
	return PQtransactionStatus(conn) == PQTRANS_IDLE;
}

bool pgx_in_transaction(const PGconn *conn)
{
	PGTransactionStatusType ts = PQtransactionStatus(conn);
	return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
}

/* ---- advisory locks ----------------------------------------------------- */

static const char *const sql_lock_try = "SELECT pg_try_advisory_lock($1::bigint)";
static const char *const sql_lock_wait = "SELECT pg_advisory_lock($1::bigint)";
static const char *const sql_unlock = "SELECT pg_advisory_unlock($1::bigint)";
static const char *const sql_lock_timeout_get = "SELECT current_setting('lock_timeout')";
static const char *const sql_lock_timeout_set = "SELECT set_config('lock_timeout', $1, false)";
/* A bigint key is stored as classid = high 32 bits, objid = low 32 bits,
 * objsubid = 1 (see the pg_locks documentation). */
static const char *const sql_lock_holder =
	"SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
	" AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
	" AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid"
	" AND objsubid = 1 AND granted LIMIT 1";

static bool query_bool(PGconn *conn, const char *sql, int64_t key, bool *out,
		       struct pgx_err *err)
{
	char key_text[24];
	snprintf(key_text, sizeof(key_text), "%" PRId64, key);
	const char *values[] = {key_text};
	PGresult *res = pgx_exec(conn, sql, 1, values, err);
	if (!res)
		return false;
	bool ok = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
	if (ok)
		*out = PQgetvalue(res, 0, 0)[0] == 't';
	else
		err_set(err, "", "unexpected result from %s", sql);
	PQclear(res);
	return ok;
}

bool pgx_lock_try(PGconn *conn, int64_t key, bool *acquired, struct pgx_err *err)
{
	return query_bool(conn, sql_lock_try, key, acquired, err);
}

bool pgx_lock_wait(PGconn *conn, int64_t key, int timeout_ms, struct pgx_err *err)
{
	char old_timeout[64] = "";
	if (timeout_ms > 0) {
		PGresult *res = pgx_exec(conn, sql_lock_timeout_get, 0, NULL, err);
		if (!res)
			return false;
		snprintf(old_timeout, sizeof(old_timeout), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		char value[24];
		snprintf(value, sizeof(value), "%dms", timeout_ms);
		const char *values[] = {value};
		if (!pgx_cmd(conn, sql_lock_timeout_set, 1, values, NULL, err))
			return false;
	}
	char key_text[24];
	snprintf(key_text, sizeof(key_text), "%" PRId64, key);
	const char *values[] = {key_text};
	bool ok = pgx_cmd(conn, sql_lock_wait, 1, values, NULL, err);
	if (timeout_ms > 0) {
		/* Inside a failed transaction the ROLLBACK undoes the setting. */
		const char *restore[] = {old_timeout};
		struct pgx_err ignored;
		/* The lock, if taken, stays held: a failed restore only leaves
		 * the session's lock_timeout changed, which is worth a warning. */
		if (!pgx_in_transaction(conn) &&
		    !pgx_cmd(conn, sql_lock_timeout_set, 1, restore, NULL, &ignored))
			log_warn("postgres: restoring lock_timeout failed: %s", ignored.msg);
	}
	return ok;
}

bool pgx_unlock(PGconn *conn, int64_t key, struct pgx_err *err)
{
	bool released = false;
	if (!query_bool(conn, sql_unlock, key, &released, err))
		return false;
	if (!released)
		err_set(err, "", "advisory lock %" PRId64 " was not held by this session", key);
	return released;
}

bool pgx_lock_holder(PGconn *conn, int64_t key, int *pid, struct pgx_err *err)
{
	char key_text[24];
	snprintf(key_text, sizeof(key_text), "%" PRId64, key);
	const char *values[] = {key_text};
	PGresult *res = pgx_exec(conn, sql_lock_holder, 1, values, err);
	if (!res)
		return false;
	*pid = PQntuples(res) > 0 ? atoi(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	return true;
}

/* ---- COPY --------------------------------------------------------------- */

/* A COPY FROM STDIN in progress. Owned by the caller from pgx_copy_begin to
 * pgx_copy_end/pgx_copy_abort, which free it. */
struct pgx_copy {
	PGconn *conn;	   /* borrowed: the caller's connection */
	char *buf;	   /* PGX_COPY_CHUNK bytes, owned */
	size_t len;	   /* bytes waiting in buf */
	bool at_row_start; /* no field yet in the current row */
	int field;	   /* fields in the current row, for messages */
	long long rows;	   /* rows ended */
	bool failed;	   /* a failure stuck; error says which */
	struct pgx_err error;
};

size_t pgx_copy_escape(const char *in, size_t len, char *out)
{
	char *o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		/* Only four bytes (and NUL) are special; everything above '\r'
		 * except the backslash, including all of UTF-8's multibyte
		 * sequences, is copied as is. */
		if (c > '\r' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		switch (c) {
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		case '\0': return PGX_COPY_BAD_BYTE;
		default: *o++ = (char)c; break;
		}
	}
	return (size_t)(o - out);
}

static void __attribute__((format(printf, 2, 3))) copy_fail(struct pgx_copy *copy, const char *fmt, ...)
{
	if (copy->failed)
		return;
	copy->failed = true;
	copy->error.sqlstate[0] = '\0';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(copy->error.msg, sizeof(copy->error.msg), fmt, ap);
	va_end(ap);
	one_line(copy->error.msg);
}

static bool copy_flush(struct pgx_copy *copy)
{
	if (copy->failed)
		return false;
	if (copy->len == 0)
		return true;
	int rc = PQputCopyData(copy->conn, copy->buf, (int)copy->len);
	if (rc != 1) {
		copy_fail(copy, "COPY send failed: %s",
			  rc == 0 ? "would block" : PQerrorMessage(copy->conn));
		return false;
	}
	copy->len = 0;
	return true;
}

static void copy_put(struct pgx_copy *copy, const char *data, size_t len)
{
	while (len > 0 && !copy->failed) {
		size_t space = PGX_COPY_CHUNK - copy->len;
		if (space == 0) {
			if (!copy_flush(copy))
				return;
			continue;
		}
		size_t take = len < space ? len : space;
		memcpy(copy->buf + copy->len, data, take);
		copy->len += take;
		data += take;
		len -= take;
	}
}

static void copy_separator(struct pgx_copy *copy)
{
	if (!copy->at_row_start)
		copy_put(copy, "\t", 1);
	copy->at_row_start = false;
	copy->field++;
}

void pgx_copy_field(struct pgx_copy *copy, const char *value, size_t len)
{
	if (copy->failed)
		return;
	copy_separator(copy);
	if (!value) {
		copy_put(copy, "\\N", 2);
		return;
	}
	/* Escape straight into the send buffer, in pieces that fit. */
	while (len > 0 && !copy->failed) {
		size_t space = PGX_COPY_CHUNK - copy->len;
		if (space < 2) {
			if (!copy_flush(copy))
				return;
			continue;
		}
		size_t take = len < space / 2 ? len : space / 2;
		size_t written = pgx_copy_escape(value, take, copy->buf + copy->len);
		if (written == PGX_COPY_BAD_BYTE) {
			copy_fail(copy, "row %lld field %d: NUL byte in a text value",
				  copy->rows + 1, copy->field);
			return;
		}
		copy->len += written;
		value += take;
		len -= take;
	}
}

void pgx_copy_str(struct pgx_copy *copy, const char *value)
{
	pgx_copy_field(copy, value, value ? strlen(value) : 0);
}

void pgx_copy_null(struct pgx_copy *copy)
{
	pgx_copy_field(copy, NULL, 0);
}

void pgx_copy_int(struct pgx_copy *copy, long long value)
{
	if (copy->failed)
		return;
	char text[24];
	int n = snprintf(text, sizeof(text), "%lld", value);
	copy_separator(copy);
	copy_put(copy, text, (size_t)n);
}

bool pgx_copy_end_row(struct pgx_copy *copy, struct pgx_err *err)
{
	if (!copy->failed) {
		copy_put(copy, "\n", 1);
		copy->at_row_start = true;
		copy->field = 0;
		copy->rows++;
	}
	if (copy->failed) {
		if (err)
			*err = copy->error;
		return false;
	}
	return true;
}

bool pgx_copy_row(struct pgx_copy *copy, int nfields, const char *const *values,
		  struct pgx_err *err)
{
	for (int i = 0; i < nfields; i++)
		pgx_copy_str(copy, values[i]);
	return pgx_copy_end_row(copy, err);
}

long long pgx_copy_rows(const struct pgx_copy *copy)
{
	return copy->rows;
}

static void copy_free(struct pgx_copy *copy)
{
	if (!copy)
		return;
	free(copy->buf);
	free(copy);
}

/* After PQputCopyEnd: read results until NULL, keeping the first failure.
 * Returns whether a PGRES_COMMAND_OK arrived and no failure did. */
static bool copy_drain(PGconn *conn, long long *rows, struct pgx_err *first_error,
		       bool have_error)
{
	bool command_ok = false;
	int copy_in_seen = 0;
	PGresult *res;
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType status = PQresultStatus(res);
		if (status == PGRES_COMMAND_OK) {
			command_ok = true;
			if (rows) {
				const char *tuples = PQcmdTuples(res);
				*rows = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
			}
		} else if (status == PGRES_COPY_IN) {
			/* Still in COPY: the end did not go out. Try once more, then
			 * give up rather than loop; the connection is then unusable. */
			PQclear(res);
			if (!have_error) {
				err_from_conn(first_error, conn, "COPY end failed");
				have_error = true;
			}
			if (++copy_in_seen > 2 || PQputCopyEnd(conn, "COPY end failed") != 1)
				return false;
			continue;
		} else if (!have_error) {
			err_from_result(first_error, res, conn, NULL);
			have_error = true;
		}
		PQclear(res);
	}
	return command_ok && !have_error;
}

struct pgx_copy *pgx_copy_begin(PGconn *conn, const char *copy_sql, struct pgx_err *err)
{
	PGresult *res = PQexec(conn, copy_sql);
	ExecStatusType status = PQresultStatus(res);
	if (res && status == PGRES_COPY_IN && !PQbinaryTuples(res)) {
		PQclear(res);
		struct pgx_copy *copy = calloc(1, sizeof(*copy));
		if (copy)
			copy->buf = malloc(PGX_COPY_CHUNK);
		if (!copy || !copy->buf) {
			copy_free(copy);
			(void)PQputCopyEnd(conn, "client out of memory");
			struct pgx_err ignored;
			(void)copy_drain(conn, NULL, &ignored, true);
			err_set(err, "", "COPY: out of memory");
			return NULL;
		}
		copy->conn = conn;
		copy->at_row_start = true;
		return copy;
	}

	if (res && status == PGRES_COPY_IN) {
		err_set(err, "", "COPY: binary format is not supported here");
		PQclear(res);
		(void)PQputCopyEnd(conn, "binary COPY not supported by this client");
		struct pgx_err ignored;
		(void)copy_drain(conn, NULL, &ignored, true);
		return NULL;
	}
	if (res && (status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH)) {
		err_set(err, "", "COPY: not a COPY ... FROM STDIN statement");
		PQclear(res);
		char *row;
		while (PQgetCopyData(conn, &row, 0) > 0)
			PQfreemem(row);
		PGresult *rest;
		while ((rest = PQgetResult(conn)) != NULL)
			PQclear(rest);
		return NULL;
	}
	if (res && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK))
		err_set(err, "", "COPY: statement did not start a COPY FROM STDIN");
	else
		err_from_result(err, res, conn, NULL);
	PQclear(res);
	return NULL;
}

bool pgx_copy_end(struct pgx_copy *copy, long long *rows, struct pgx_err *err)
{
	PGconn *conn = copy->conn;
	if (!copy->failed && !copy->at_row_start)
		copy_fail(copy, "COPY ended in the middle of row %lld", copy->rows + 1);
	(void)copy_flush(copy);

	struct pgx_err first = {{0}, {0}};
	bool have_error = copy->failed;
	if (have_error)
		first = copy->error;
	/* A local failure ends the COPY with its reason, so the server discards
	 * everything sent; the transaction (if any) is then failed too. */
	if (PQputCopyEnd(conn, have_error ? first.msg : NULL) != 1 && !have_error) {
		err_from_conn(&first, conn, "COPY end failed");
		have_error = true;
	}
	bool ok = copy_drain(conn, rows, &first, have_error);
	copy_free(copy);
	if (!ok && err) {
		*err = first;
		if (!err->msg[0])
			err_set(err, "", "COPY failed without a reason from the server");
	}
	return ok;
}

void pgx_copy_abort(struct pgx_copy *copy, const char *reason)
{
	if (!copy)
		return;
	/* If the end cannot be sent the connection is lost, and PQgetResult
	 * reports that once and then NULL: the drain ends either way. */
	struct pgx_err ignored;
	(void)PQputCopyEnd(copy->conn, reason && *reason ? reason : "aborted by client");
	(void)copy_drain(copy->conn, NULL, &ignored, true);
	copy_free(copy);
}
