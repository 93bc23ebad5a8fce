#include "rds.h"

#include "base.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* sun_path holds 108 bytes including the NUL. */
#define UNIX_PATH_MAX_LEN 107
#define DB_MAX 1000000

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- URL parsing ------------------------------------------------------- */

static const char url_forms[] =
	"expected redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]";

/* Percent-decode [in, in+len) into out (outlen with the NUL). `what` names
 * the part for the error; its text is never quoted (it may be a password). */
static bool decode_part(const char *in, size_t len, char *out, size_t outlen, const char *what,
			char *err, size_t errlen)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			int hi = i + 2 < len ? hex_value(in[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(in[i + 2]) : -1;
			/* %00 would cut the value short in C strings: refused too. */
			if (hi < 0 || lo < 0 || (hi << 4 | lo) == 0) {
				set_err(err, errlen, "redis URL: bad percent-escape in the %s", what);
				return false;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (o + 1 >= outlen) {
			set_err(err, errlen, "redis URL: %s is longer than %zu bytes", what, outlen - 1);
			return false;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* A decimal number in [min, max], digits only. */
static bool parse_number(const char *text, size_t len, long min, long max, long *out)
{
	if (len == 0 || len > 9)
		return false;
	long value = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)text[i]))
			return false;
		value = value * 10 + (text[i] - '0');
	}
	if (value < min || value > max)
		return false;
	*out = value;
	return true;
}

/* userinfo "user:password" or ":password" (the text before '@'). */
static bool parse_userinfo(const char *in, size_t len, struct rds_url *out, char *err,
			   size_t errlen)
{
	const char *colon = memchr(in, ':', len);
	if (!colon) {
		set_err(err, errlen,
			"redis URL: credentials need a ':' (redis://:password@host or "
			"redis://user:password@host)");
		return false;
	}
	if (!decode_part(in, (size_t)(colon - in), out->user, sizeof(out->user), "user name", err,
			 errlen) ||
	    !decode_part(colon + 1, len - (size_t)(colon - in) - 1, out->password,
			 sizeof(out->password), "password", err, errlen))
		return false;
	/* "redis://:@host": an empty password is no password (no AUTH). */
	out->has_password = out->password[0] != '\0';
	return true;
}

/* "?db=N&password=P&user=U" (text after '?'). */
static bool parse_query(const char *q, bool db_given, struct rds_url *out, char *err,
			size_t errlen)
{
	bool seen_db = db_given, seen_password = out->has_password, seen_user = out->user[0];
	while (*q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		if (!eq) {
			set_err(err, errlen, "redis URL: query parameter '%.*s' needs a value (db=N)",
				(int)(len > 32 ? 32 : len), q);
			return false;
		}
		size_t klen = (size_t)(eq - q);
		const char *value = eq + 1;
		size_t vlen = len - klen - 1;
		if (klen == 2 && memcmp(q, "db", 2) == 0) {
			long db;
			if (seen_db) {
				set_err(err, errlen, "redis URL: db given twice");
				return false;
			}
			if (!parse_number(value, vlen, 0, DB_MAX, &db)) {
				set_err(err, errlen, "redis URL: db '%.*s' is not a number 0..%d",
					(int)(vlen > 32 ? 32 : vlen), value, DB_MAX);
				return false;
			}
			out->db = (int)db;
			seen_db = true;
		} else if (klen == 8 && memcmp(q, "password", 8) == 0) {
			if (seen_password) {
				set_err(err, errlen, "redis URL: password given twice");
				return false;
			}
			if (!decode_part(value, vlen, out->password, sizeof(out->password), "password",
					 err, errlen))
				return false;
			out->has_password = out->password[0] != '\0';
			seen_password = true;
		} else if (klen == 4 && memcmp(q, "user", 4) == 0) {
			if (seen_user) {
				set_err(err, errlen, "redis URL: user given twice");
				return false;
			}
			if (!decode_part(value, vlen, out->user, sizeof(out->user), "user name", err,
					 errlen))
				return false;
			seen_user = true;
		} else {
			set_err(err, errlen,
				"redis URL: unknown query parameter '%.*s' (known: db, password, user)",
				(int)(klen > 32 ? 32 : klen), q);
			return false;
		}
		q += len;
		if (*q == '&')
			q++;
	}
	if (out->user[0] && !out->has_password) {
		set_err(err, errlen, "redis URL: a user name needs a password");
		return false;
	}
	return true;
}

static bool parse_tcp(const char *rest, struct rds_url *out, char *err, size_t errlen)
{
	/* The authority ends at the first '/' or '?' (RFC 3986): a '/' or '?'
	 * in a password must be percent-encoded. */
	size_t auth_len = strcspn(rest, "/?");
	const char *after = rest + auth_len;
	const char *at = NULL;
	for (const char *p = rest; p < after; p++)
		if (*p == '@')
			at = p; /* the last '@': the host part has none */
	const char *hostport = rest;
	if (at) {
		if (!parse_userinfo(rest, (size_t)(at - rest), out, err, errlen))
			return false;
		hostport = at + 1;
	}
	size_t hp_len = (size_t)(after - hostport);
	const char *port_text = NULL;
	size_t port_len = 0;
	const char *host = hostport;
	size_t host_len;
	if (hp_len > 0 && hostport[0] == '[') {
		const char *close = memchr(hostport, ']', hp_len);
		if (!close) {
			set_err(err, errlen, "redis URL: IPv6 address without ']'");
			return false;
		}
		host = hostport + 1;
		host_len = (size_t)(close - host);
		const char *tail = close + 1;
		if (tail < after) {
			if (*tail != ':') {
				set_err(err, errlen, "redis URL: unexpected text after ']'");
				return false;
			}
			port_text = tail + 1;
			port_len = (size_t)(after - port_text);
		}
	} else {
		const char *colon = memchr(hostport, ':', hp_len);
		host_len = colon ? (size_t)(colon - hostport) : hp_len;
		if (colon) {
			port_text = colon + 1;
			port_len = (size_t)(after - port_text);
		}
	}
	if (host_len == 0) {
		set_err(err, errlen, "redis URL: host is missing; %s", url_forms);
		return false;
	}
	if (host_len >= sizeof(out->host)) {
		set_err(err, errlen, "redis URL: host is longer than %zu bytes", sizeof(out->host) - 1);
		return false;
	}
	memcpy(out->host, host, host_len);
	out->host[host_len] = '\0';

	out->port = RDS_DEFAULT_PORT;
	if (port_text) {
		long port;
		if (!parse_number(port_text, port_len, 1, 65535, &port)) {
			set_err(err, errlen, "redis URL: port '%.*s' is not a number 1..65535",
				(int)(port_len > 16 ? 16 : port_len), port_text);
			return false;
		}
		out->port = (int)port;
	}

	bool db_given = false;
	const char *query = NULL;
	if (*after == '/') {
		const char *db_text = after + 1;
		size_t db_len = strcspn(db_text, "?");
		if (db_len > 0) {
			long db;
			if (!parse_number(db_text, db_len, 0, DB_MAX, &db)) {
				set_err(err, errlen, "redis URL: db '%.*s' is not a number 0..%d",
					(int)(db_len > 32 ? 32 : db_len), db_text, DB_MAX);
				return false;
			}
			out->db = (int)db;
			db_given = true;
		}
		if (db_text[db_len] == '?')
			query = db_text + db_len + 1;
	} else if (*after == '?') {
		query = after + 1;
	}
	if (query && !parse_query(query, db_given, out, err, errlen))
		return false;
	if (out->user[0] && !out->has_password) {
		set_err(err, errlen, "redis URL: a user name needs a password");
		return false;
	}
	return true;
}

static bool parse_unix(const char *rest, struct rds_url *out, char *err, size_t errlen)
{
	/* unix://[[user]:password@]/path[?query]: credentials, if any, come
	 * before the path's leading '/'. */
	if (rest[0] != '/') {
		const char *at = strchr(rest, '@');
		if (!at || at[1] != '/') {
			set_err(err, errlen,
				"redis URL: unix socket path must be absolute (unix:///path/to/redis.sock)");
			return false;
		}
		if (!parse_userinfo(rest, (size_t)(at - rest), out, err, errlen))
			return false;
		rest = at + 1;
	}
	size_t path_len = strcspn(rest, "?");
	if (path_len <= 1) {
		set_err(err, errlen, "redis URL: unix socket path is missing (unix:///path/to/redis.sock)");
		return false;
	}
	if (path_len > UNIX_PATH_MAX_LEN) {
		set_err(err, errlen, "redis URL: unix socket path is longer than %d bytes",
			UNIX_PATH_MAX_LEN);
		return false;
	}
	if (!decode_part(rest, path_len, out->path, sizeof(out->path), "socket path", err, errlen))
		return false;
	out->is_unix = true;
	if (rest[path_len] == '?' && !parse_query(rest + path_len + 1, false, out, err, errlen))
		return false;
	return true;
}

bool rds_url_parse(const char *url, struct rds_url *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!url || !*url) {
		set_err(err, errlen, "redis URL is empty; %s", url_forms);
		return false;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			set_err(err, errlen, "redis URL contains a space or control character");
			return false;
		}
		if (*p == '#') {
			set_err(err, errlen, "redis URL contains '#'; %s", url_forms);
			return false;
		}
	}
	bool ok;
	if (strncasecmp(url, "redis://", 8) == 0) {
		ok = parse_tcp(url + 8, out, err, errlen);
	} else if (strncasecmp(url, "unix://", 7) == 0) {
		ok = parse_unix(url + 7, out, err, errlen);
	} else if (strncasecmp(url, "rediss://", 9) == 0) {
		set_err(err, errlen, "redis URL: TLS (rediss://) is not supported (hiredis 0.14 has no SSL)");
		ok = false;
	} else {
		const char *sep = strstr(url, "://");
		set_err(err, errlen, "redis URL: unknown scheme '%.*s'; %s",
			sep && sep - url < 16 ? (int)(sep - url) : 0, url, url_forms);
		ok = false;
	}
	if (!ok) {
		/* A half-parsed password must not linger in the caller's struct. */
		memset(out, 0, sizeof(*out));
	}
	return ok;
}

char *rds_url_describe(const struct rds_url *url, char *out, size_t outlen)
{
	if (url->is_unix)
		snprintf(out, outlen, "unix://%s?db=%d", url->path, url->db);
	else if (strchr(url->host, ':'))
		snprintf(out, outlen, "redis://[%s]:%d/%d", url->host, url->port, url->db);
	else
		snprintf(out, outlen, "redis://%s:%d/%d", url->host, url->port, url->db);
	return out;
}

/* ---- connection -------------------------------------------------------- */

/* A connection. Owned by its creator (rds_new), released by rds_free. */
struct rds {
	redisContext *ctx; /* owned */
	size_t pending;	   /* appended commands whose replies are unread */
	bool is_broken;	   /* an I/O or protocol error happened: only rds_free helps */
	char desc[300];	   /* the URL without credentials, for messages */
};

void rds_free(struct rds *r)
{
	if (!r)
		return;
	if (r->ctx)
		redisFree(r->ctx);
	free(r);
}

redisContext *rds_context(struct rds *r)
{
	return r->ctx;
}

bool rds_is_usable(const struct rds *r)
{
	return r && r->ctx && !r->is_broken && r->ctx->err == 0;
}

/* An error reply anywhere in the reply (EXEC nests them in an array). */
static const redisReply *find_error(const redisReply *reply)
{
	if (!reply)
		return NULL;
	if (reply->type == REDIS_REPLY_ERROR)
		return reply;
	if (reply->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < reply->elements; i++) {
			const redisReply *e = find_error(reply->element[i]);
			if (e)
				return e;
		}
	return NULL;
}

redisReply *rds_command(struct rds *r, int argc, const char **argv, const size_t *argvlen,
			char *err, size_t errlen)
{
	if (!rds_is_usable(r)) {
		set_err(err, errlen, "%s: connection is broken", r ? r->desc : "redis");
		return NULL;
	}
	if (r->pending) {
		set_err(err, errlen, "%s: %zu pipelined commands not flushed", r->desc, r->pending);
		return NULL;
	}
	redisReply *reply = redisCommandArgv(r->ctx, argc, argv, argvlen);
	if (!reply) {
		r->is_broken = true;
		set_err(err, errlen, "%s: %s: %s", r->desc, argc > 0 ? argv[0] : "command",
			r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
		return NULL;
	}
	const redisReply *error = find_error(reply);
	if (error) {
		set_err(err, errlen, "%s: %s: %.*s", r->desc, argc > 0 ? argv[0] : "command",
			(int)(error->len > 200 ? 200 : error->len), error->str);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

struct rds *rds_new(const char *url_text, int timeout_ms, char *err, size_t errlen)
{
	struct rds_url url;
	if (!rds_url_parse(url_text, &url, err, errlen))
		return NULL;
	struct rds *r = calloc(1, sizeof(*r));
	if (!r) {
		set_err(err, errlen, "redis: out of memory");
		goto fail;
	}
	rds_url_describe(&url, r->desc, sizeof(r->desc));

	int connect_ms = timeout_ms > 0 ? timeout_ms : 5000;
	struct timeval tv = {.tv_sec = connect_ms / 1000, .tv_usec = (connect_ms % 1000) * 1000};
	r->ctx = url.is_unix ? redisConnectUnixWithTimeout(url.path, tv)
			     : redisConnectWithTimeout(url.host, url.port, tv);
	if (!r->ctx || r->ctx->err) {
		set_err(err, errlen, "%s: connect failed: %s", r->desc,
			r->ctx ? r->ctx->errstr : "out of memory");
		goto fail;
	}
	if (timeout_ms > 0 && redisSetTimeout(r->ctx, tv) != REDIS_OK) {
		set_err(err, errlen, "%s: setting the I/O timeout failed: %s", r->desc,
			r->ctx->errstr);
		goto fail;
	}
	/* Dead peers (a VM gone without a FIN) are noticed by the kernel. */
	if (!url.is_unix)
		(void)redisEnableKeepAlive(r->ctx);

	char why[256];
	redisReply *reply;
	if (url.has_password) {
		const char *argv[3] = {"AUTH"};
		int argc = 1;
		if (url.user[0])
			argv[argc++] = url.user;
		argv[argc++] = url.password;
		reply = rds_command(r, argc, argv, NULL, why, sizeof(why));
		if (!reply) {
			/* why names the command, never its arguments. */
			set_err(err, errlen, "%s: authentication failed: %s", r->desc, why);
			goto fail;
		}
		freeReplyObject(reply);
	}
	if (url.db != 0) {
		char db_text[16];
		snprintf(db_text, sizeof(db_text), "%d", url.db);
		const char *argv[] = {"SELECT", db_text};
		reply = rds_command(r, 2, argv, NULL, why, sizeof(why));
		if (!reply) {
			set_err(err, errlen, "%s", why);
			goto fail;
		}
		freeReplyObject(reply);
	}
	if (!url.has_password && url.db == 0) {
		const char *argv[] = {"PING"};
		reply = rds_command(r, 1, argv, NULL, why, sizeof(why));
		if (!reply) {
			set_err(err, errlen, "%s", why);
			goto fail;
		}
		freeReplyObject(reply);
	}
	memset(&url, 0, sizeof(url)); /* the password: no copy outlives the call */
	return r;
fail:
	memset(&url, 0, sizeof(url));
	rds_free(r);
	return NULL;
}

/* ---- pipelined batches ------------------------------------------------- */

bool rds_append(struct rds *r, int argc, const char **argv, const size_t *argvlen)
{
	if (!rds_is_usable(r))
		return false;
	if (redisAppendCommandArgv(r->ctx, argc, argv, argvlen) != REDIS_OK)
		return false;
	r->pending++;
	return true;
}

size_t rds_pending(const struct rds *r)
{
	return r->pending;
}

enum rds_status rds_flush(struct rds *r, rds_reply_fn on_reply, void *arg,
			  struct rds_batch_result *result, char *err, size_t errlen)
{
	struct rds_batch_result local;
	if (!result)
		result = &local;
	memset(result, 0, sizeof(*result));

	size_t expected = r->pending;
	r->pending = 0;
	if (expected > 0 && !rds_is_usable(r)) {
		set_err(err, errlen, "%s: connection is broken; %zu replies lost", r->desc, expected);
		return RDS_IO_ERROR;
	}
	/* The first redisGetReply writes every queued command, then each call
	 * reads one reply: one round trip for the whole batch. */
	for (size_t i = 0; i < expected; i++) {
		void *raw = NULL;
		if (redisGetReply(r->ctx, &raw) != REDIS_OK || !raw) {
			r->is_broken = true;
			set_err(err, errlen, "%s: reply %zu of %zu: %s; %zu replies lost", r->desc,
				i + 1, expected, r->ctx->errstr[0] ? r->ctx->errstr : "no reply",
				expected - i);
			if (raw)
				freeReplyObject(raw);
			return RDS_IO_ERROR;
		}
		redisReply *reply = raw;
		const redisReply *error = find_error(reply);
		if (error) {
			if (result->error_replies++ == 0) {
				result->first_error_index = i;
				snprintf(result->first_error, sizeof(result->first_error), "%.*s",
					 (int)error->len, error->str);
			}
		}
		result->replies++;
		if (on_reply)
			on_reply(arg, i, reply);
		freeReplyObject(reply);
	}
	if (result->error_replies > 0) {
		set_err(err, errlen, "%s: %zu of %zu replies were errors, first at #%zu: %s", r->desc,
			result->error_replies, expected, result->first_error_index,
			result->first_error);
		return RDS_ERROR_REPLIES;
	}
	return RDS_OK;
}
