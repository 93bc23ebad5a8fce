#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "kst.h"
#include "utf8.h"

/* A message longer than this is cut (at a character boundary, after
 * redaction, so a cut can never leave half a secret). */
#define LOG_MSG_MAX (16 * 1024)
#define LOG_CTX_MAX 8
#define LOG_CTX_KEY_MAX 32
#define LOG_CTX_VALUE_MAX 128
#define LOG_SECRET_MIN 4
#define MASK "***"

enum { FORMAT_UNDECIDED = -1, FORMAT_TEXT = 0, FORMAT_JSON = 1 };

static _Atomic int current_level = LOG_INFO;
static _Atomic int output_format = FORMAT_UNDECIDED;
static const char *_Atomic role_name; /* borrowed from log_setup's caller */

/* A registered secret, and its percent-encoded form (how it looks in a
 * URL), matched without regard to case since %2b and %2B are equal. */
struct secret {
	char *text; /* owned */
	size_t len;
	bool is_encoded;
};

/* Guards secrets and nsecrets: written at start-up and reload, read by
 * every message. */
static pthread_rwlock_t secrets_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct secret *secrets; /* longest first, so the longest match wins */
static size_t nsecrets;

struct ctx_pair {
	char key[LOG_CTX_KEY_MAX];
	char value[LOG_CTX_VALUE_MAX];
};
static __thread struct ctx_pair thread_ctx[LOG_CTX_MAX];
static __thread size_t thread_nctx;

static const char *const level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warn",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

/* ---- settings ---- */

void log_setup(const char *role, enum log_level level)
{
	atomic_store(&role_name, role);
	log_set_level(level);
	log_set_json(!isatty(STDERR_FILENO));
}

void log_set_level(enum log_level level)
{
	if (level < LOG_ERROR)
		level = LOG_ERROR;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

bool log_level_parse(const char *text, enum log_level *out)
{
	if (!text)
		return false;
	for (int i = LOG_ERROR; i <= LOG_DEBUG; i++) {
		if (strcasecmp(text, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	if (strcasecmp(text, "warning") == 0) {
		*out = LOG_WARN;
		return true;
	}
	return false;
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

void log_set_json(bool json)
{
	atomic_store(&output_format, json ? FORMAT_JSON : FORMAT_TEXT);
}

static bool is_json(void)
{
	int format = atomic_load_explicit(&output_format, memory_order_relaxed);
	if (format == FORMAT_UNDECIDED) {
		/* logging before log_setup: decide as log_setup would */
		format = isatty(STDERR_FILENO) ? FORMAT_TEXT : FORMAT_JSON;
		atomic_store(&output_format, format);
	}
	return format == FORMAT_JSON;
}

/* ---- secrets ---- */

static void secrets_free_locked(void)
{
	for (size_t i = 0; i < nsecrets; i++)
		free(secrets[i].text);
	free(secrets);
	secrets = NULL;
	nsecrets = 0;
}

void log_clear_secrets(void)
{
	pthread_rwlock_wrlock(&secrets_lock);
	secrets_free_locked();
	pthread_rwlock_unlock(&secrets_lock);
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Percent-encoding as a URL query carries the value; NULL when it would
 * equal the raw text. */
static char *percent_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s), extra = 0;
	for (size_t i = 0; i < len; i++)
		if (!is_unreserved((unsigned char)s[i]))
			extra += 2;
	if (extra == 0)
		return NULL;
	char *out = malloc(len + extra + 1);
	if (!out)
		return NULL;
	char *p = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c)) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 0xF];
		}
	}
	*p = '\0';
	return out;
}

/* Insert keeping the table sorted longest first; duplicates are dropped. */
static void secret_insert_locked(char *text, bool is_encoded)
{
	size_t len = strlen(text);
	for (size_t i = 0; i < nsecrets; i++) {
		if (secrets[i].len == len && secrets[i].is_encoded == is_encoded &&
		    memcmp(secrets[i].text, text, len) == 0) {
			free(text);
			return;
		}
	}
	struct secret *grown = realloc(secrets, (nsecrets + 1) * sizeof(*secrets));
	if (!grown) {
		free(text);
		return;
	}
	secrets = grown;
	size_t at = 0;
	while (at < nsecrets && secrets[at].len >= len)
		at++;
	memmove(&secrets[at + 1], &secrets[at], (nsecrets - at) * sizeof(*secrets));
	secrets[at] = (struct secret){.text = text, .len = len, .is_encoded = is_encoded};
	nsecrets++;
}

void log_add_secret(const char *secret)
{
	if (!secret || strlen(secret) < LOG_SECRET_MIN)
		return;
	char *raw = strdup(secret);
	char *encoded = percent_encode(secret);
	pthread_rwlock_wrlock(&secrets_lock);
	if (raw)
		secret_insert_locked(raw, false);
	if (encoded)
		secret_insert_locked(encoded, true);
	pthread_rwlock_unlock(&secrets_lock);
}

/* ---- redaction ---- */

/* Length of the registered secret starting at s, or 0. Caller holds the
 * read lock. */
static size_t match_secret(const char *s, size_t len)
{
	for (size_t i = 0; i < nsecrets; i++) {
		const struct secret *sec = &secrets[i];
		if (sec->len > len)
			continue;
		if (sec->is_encoded ? strncasecmp(s, sec->text, sec->len) == 0
				    : (s[0] == sec->text[0] && memcmp(s, sec->text, sec->len) == 0))
			return sec->len;
	}
	return 0;
}

/* Copy with only registered secrets masked (user names in URLs). */
static void put_masking_secrets(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = match_secret(s + i, len - i);
		if (n) {
			buf_append(out, MASK, 3);
			i += n;
		} else {
			buf_putc(out, s[i++]);
		}
	}
}

static bool starts_nocase(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);
	return len >= n && strncasecmp(s, word, n) == 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Where a URL or bare token ends in running text. */
static bool ends_token(char c)
{
	return is_space(c) || c == '"' || c == '\'' || c == '<' || c == '>';
}

/* serviceKey=VALUE (any case, any position): the value runs to the next
 * query delimiter. Returns the input consumed. */
static size_t redact_service_key(struct buf *out, const char *s, size_t len)
{
	size_t i = sizeof("serviceKey=") - 1;
	buf_append(out, s, i);
	buf_append(out, MASK, 3);
	while (i < len && s[i] != '&' && s[i] != '#' && s[i] != ';' && !ends_token(s[i]))
		i++;
	return i;
}

/* password=VALUE, password = VALUE or password='VAL\'UE' (libpq conninfo,
 * also a URI's ?password=). An unquoted value runs to whitespace: in a
 * query string that masks the parameters after it too, which costs
 * readability, never a secret. 0 when no '=' follows. */
static size_t redact_password(struct buf *out, const char *s, size_t len)
{
	size_t i = sizeof("password") - 1;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i >= len || s[i] != '=')
		return 0;
	i++;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	buf_append(out, s, i);
	buf_append(out, MASK, 3);
	if (i < len && s[i] == '\'') {
		for (i++; i < len && s[i] != '\''; i++)
			if (s[i] == '\\' && i + 1 < len)
				i++;
		if (i < len)
			i++; /* closing quote */
		return i;
	}
	while (i < len && !is_space(s[i]) && s[i] != '"')
		i++;
	return i;
}

/* At "://": mask the password of user:password@ (or a lone userinfo that
 * is a Redis password or a token; a PostgreSQL URI's lone userinfo is a
 * user name and stays). The userinfo ends at the last '@' before the query
 * or the end of the token, so an unencoded '@' or '/' in a password is
 * still masked. `scheme` is the text before "://". Returns the input
 * consumed after "://" (0: no userinfo). */
static size_t redact_userinfo(struct buf *out, const char *s, size_t len, const char *scheme,
			      size_t scheme_len)
{
	size_t end = 0;
	while (end < len && !ends_token(s[end]) && s[end] != '?' && s[end] != '#')
		end++;
	size_t at = end;
	while (at > 0 && s[at - 1] != '@')
		at--;
	if (at == 0)
		return 0;
	size_t userinfo_len = at - 1;
	const char *colon = memchr(s, ':', userinfo_len);
	if (colon) {
		put_masking_secrets(out, s, (size_t)(colon - s));
		buf_append(out, ":" MASK "@", 5);
	} else if ((scheme_len == 8 && strncasecmp(scheme, "postgres", 8) == 0) ||
		   (scheme_len == 10 && strncasecmp(scheme, "postgresql", 10) == 0)) {
		put_masking_secrets(out, s, userinfo_len);
		buf_putc(out, '@');
	} else {
		buf_append(out, MASK "@", 4);
	}
	return at;
}

static bool is_scheme_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '-' || c == '.';
}

static void redact_locked(struct buf *out, const char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
		const char *s = text + i;
		size_t left = len - i;
		size_t n;
		if (nsecrets && (n = match_secret(s, left))) {
			buf_append(out, MASK, 3);
			i += n;
			continue;
		}
		char c = *s;
		if ((c == 's' || c == 'S') && starts_nocase(s, left, "servicekey=")) {
			i += redact_service_key(out, s, left);
			continue;
		}
		if ((c == 'p' || c == 'P') && starts_nocase(s, left, "password") &&
		    (n = redact_password(out, s, left))) {
			i += n;
			continue;
		}
		if (c == ':' && left >= 3 && s[1] == '/' && s[2] == '/') {
			size_t scheme_len = 0;
			while (scheme_len < i && is_scheme_char(text[i - scheme_len - 1]))
				scheme_len++;
			buf_append(out, "://", 3);
			i += 3;
			i += redact_userinfo(out, text + i, len - i, text + i - 3 - scheme_len,
					     scheme_len);
			continue;
		}
		buf_putc(out, c);
		i++;
	}
}

void log_redact_buf(struct buf *out, const char *text, size_t len)
{
	pthread_rwlock_rdlock(&secrets_lock);
	redact_locked(out, text, len);
	pthread_rwlock_unlock(&secrets_lock);
}

char *log_redact(const char *text, char *out, size_t outlen)
{
	if (!out || outlen == 0)
		return out;
	out[0] = '\0';
	if (!text)
		return out;
	char storage[512];
	struct buf b;
	buf_init_with(&b, storage, sizeof(storage));
	log_redact_buf(&b, text, strlen(text));
	if (buf_ok(&b)) { /* on failure print nothing rather than risk a secret */
		size_t n = b.len < outlen ? b.len : outlen - 1;
		n = utf8_cut(b.data, n);
		memcpy(out, b.data, n);
		out[n] = '\0';
	}
	buf_free(&b);
	return out;
}

/* ---- context ---- */

static bool is_reserved_key(const char *key)
{
	return strcmp(key, "ts") == 0 || strcmp(key, "level") == 0 || strcmp(key, "role") == 0 ||
	       strcmp(key, "msg") == 0;
}

static void copy_cut(char *dst, size_t dstlen, const char *src)
{
	size_t n = utf8_cut(src, strnlen(src, dstlen - 1));
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void log_ctx_set(const char *key, const char *value)
{
	if (!key || !*key || strlen(key) >= LOG_CTX_KEY_MAX || is_reserved_key(key))
		return;
	size_t i = 0;
	while (i < thread_nctx && strcmp(thread_ctx[i].key, key) != 0)
		i++;
	if (!value) {
		if (i < thread_nctx) {
			memmove(&thread_ctx[i], &thread_ctx[i + 1],
				(thread_nctx - i - 1) * sizeof(thread_ctx[0]));
			thread_nctx--;
		}
		return;
	}
	if (i == thread_nctx) {
		if (thread_nctx == LOG_CTX_MAX)
			return;
		thread_nctx++;
		copy_cut(thread_ctx[i].key, sizeof(thread_ctx[i].key), key);
	}
	copy_cut(thread_ctx[i].value, sizeof(thread_ctx[i].value), value);
}

void log_ctx_clear(void)
{
	thread_nctx = 0;
}

/* ---- output ---- */

/* Text mode: one event per line, so control characters are shown escaped
 * and invalid UTF-8 as U+FFFD. */
static void put_text_escaped(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			uint32_t cp;
			size_t n = utf8_decode(s + i, len - i, &cp);
			if (cp == UTF8_INVALID)
				buf_append(out, UTF8_REPLACEMENT_TEXT, 3);
			else
				buf_append(out, s + i, n);
			i += n;
			continue;
		}
		if (c == '\n')
			buf_append(out, "\\n", 2);
		else if (c == '\r')
			buf_append(out, "\\r", 2);
		else if (c == '\t')
			buf_append(out, "\\t", 2);
		else if (c < 0x20 || c == 0x7f)
			buf_printf(out, "\\x%02x", c);
		else
			buf_putc(out, (char)c);
		i++;
	}
}

/* "2024-01-02T03:04:05.123Z" */
static void put_timestamp(struct buf *out)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	char iso[KST_ISO_UTC_SIZE];
	size_t n = kst_format_iso_utc(now.tv_sec, iso);
	buf_append(out, iso, n - 1); /* without the Z */
	char ms[6] = {'.', 0};
	int millis = (int)(now.tv_nsec / 1000000);
	ms[1] = (char)('0' + millis / 100);
	ms[2] = (char)('0' + millis / 10 % 10);
	ms[3] = (char)('0' + millis % 10);
	ms[4] = 'Z';
	buf_append(out, ms, 5);
}

static const char *current_role(void)
{
	const char *role = atomic_load_explicit(&role_name, memory_order_relaxed);
	return role ? role : program_invocation_short_name;
}

static void format_json(struct buf *line, enum log_level level, const char *msg, size_t len,
			struct buf *scratch)
{
	const char *role = current_role();
	buf_append(line, "{\"ts\":\"", 7);
	put_timestamp(line);
	buf_append(line, "\",\"level\":\"", 11);
	buf_puts(line, level_names[level]);
	buf_append(line, "\",\"role\":\"", 10);
	json_escape(line, role, strlen(role));
	buf_append(line, "\",\"msg\":\"", 9);
	json_escape(line, msg, len);
	buf_putc(line, '"');
	for (size_t i = 0; i < thread_nctx; i++) {
		buf_append(line, ",\"", 2);
		json_escape(line, thread_ctx[i].key, strlen(thread_ctx[i].key));
		buf_append(line, "\":\"", 3);
		buf_reset(scratch);
		log_redact_buf(scratch, thread_ctx[i].value, strlen(thread_ctx[i].value));
		json_escape(line, scratch->data, scratch->len);
		buf_putc(line, '"');
	}
	buf_append(line, "}\n", 2);
}

static void format_text(struct buf *line, enum log_level level, const char *msg, size_t len,
			struct buf *scratch)
{
	static const char *const upper[] = {
		[LOG_ERROR] = "ERROR",
		[LOG_WARN] = "WARN ",
		[LOG_INFO] = "INFO ",
		[LOG_DEBUG] = "DEBUG",
	};
	const char *role = current_role();
	put_timestamp(line);
	buf_putc(line, ' ');
	buf_puts(line, upper[level]);
	buf_putc(line, ' ');
	put_text_escaped(line, role, strlen(role));
	for (size_t i = 0; i < thread_nctx; i++) {
		buf_putc(line, ' ');
		put_text_escaped(line, thread_ctx[i].key, strlen(thread_ctx[i].key));
		buf_putc(line, '=');
		buf_reset(scratch);
		log_redact_buf(scratch, thread_ctx[i].value, strlen(thread_ctx[i].value));
		put_text_escaped(line, scratch->data, scratch->len);
	}
	buf_append(line, ": ", 2);
	put_text_escaped(line, msg, len);
	buf_putc(line, '\n');
}

/* One write(2) per line, so lines from concurrent threads never interleave
 * (atomic for pipes up to PIPE_BUF, and for O_APPEND files). */
static void write_line(const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		data += n;
		len -= (size_t)n;
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	if (level < LOG_ERROR || level > LOG_DEBUG)
		level = LOG_ERROR;
	int saved_errno = errno; /* callers may log between a call and reading errno */

	char raw_storage[1024];
	char *raw = raw_storage;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(raw_storage, sizeof(raw_storage), fmt, ap);
	va_end(ap);
	if (n < 0) {
		raw_storage[0] = '\0';
		n = 0;
	} else if ((size_t)n >= sizeof(raw_storage)) {
		/* format in full before redacting, so no secret is cut in half */
		char *big = malloc((size_t)n + 1);
		if (big) {
			va_start(ap, fmt);
			vsnprintf(big, (size_t)n + 1, fmt, ap);
			va_end(ap);
			raw = big;
		} else {
			n = (int)sizeof(raw_storage) - 1;
		}
	}

	char msg_storage[1024], line_storage[2048], scratch_storage[256];
	struct buf msg, line, scratch;
	buf_init_with(&msg, msg_storage, sizeof(msg_storage));
	buf_init_with(&line, line_storage, sizeof(line_storage));
	buf_init_with(&scratch, scratch_storage, sizeof(scratch_storage));

	log_redact_buf(&msg, raw, (size_t)n);
	if (raw != raw_storage)
		free(raw);
	if (!buf_ok(&msg)) {
		buf_reset(&msg);
		buf_puts(&msg, "(log message dropped: out of memory)");
	}
	if (msg.len > LOG_MSG_MAX) {
		buf_truncate(&msg, utf8_cut(msg.data, LOG_MSG_MAX));
		buf_puts(&msg, " [truncated]");
	}

	if (is_json())
		format_json(&line, level, msg.data, msg.len, &scratch);
	else
		format_text(&line, level, msg.data, msg.len, &scratch);
	if (buf_ok(&line))
		write_line(line.data, line.len);

	buf_free(&msg);
	buf_free(&line);
	buf_free(&scratch);
	errno = saved_errno;
}
