/* log: the process's one stderr logger.
 * Owns the log level, the output format (readable text on a TTY, one JSON
 * object per line otherwise, decided once at log_setup), the role name and a
 * small per-thread context (run, page or request id). Owns secret redaction:
 * every URL, conninfo or Redis URL that may reach a log passes log_redact(),
 * and the known secret values registered with log_add_secret() are masked
 * wherever they appear in a message. No other module writes to stderr except
 * usage text. */
#ifndef EV_LOG_H
#define EV_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* role: "ingestd", "apid", ...; borrowed, must outlive logging. */
void log_setup(const char *role, enum log_level level);
void log_set_level(enum log_level level);
bool log_level_parse(const char *text, enum log_level *out);
bool log_enabled(enum log_level level);
/* Force JSON (true) or text (false) output, overriding the isatty(2) choice
 * made by log_setup (tests use this). */
void log_set_json(bool json);

/* A value that must never be printed (service key, password). Copied; masked
 * as *** in every later message, also in its percent-encoded form (how a
 * key rides in a URL; hex digits in any case). Values shorter than 4 bytes
 * are ignored, as masking them would garble ordinary text. */
void log_add_secret(const char *secret);
void log_clear_secrets(void);

/* Copy `text` into out (always NUL-terminated, truncated to outlen at a
 * character boundary) with the secrets of URLs and connection strings
 * masked, plus every registered secret. Returns out. Rules:
 *   serviceKey=VALUE   any case, anywhere; VALUE ends at & # ; whitespace
 *                      or a quote                  -> serviceKey=***
 *   scheme://user:pw@  any scheme; the userinfo ends at the last '@' before
 *                      ? # or the end of the token, so a raw '@' or '/' in
 *                      the password is still covered -> user:***@
 *   scheme://pw@       a lone userinfo is a password (redis://pw@) or a
 *                      token, except for postgres(ql):// where it is the
 *                      user name and stays          -> ***@
 *   password=VALUE     any case, spaces around '=' allowed, 'quoted \'
 *                      values; an unquoted VALUE ends at whitespace
 *                      (libpq conninfo, ?password= in a URI) -> password=***
 * log_msg applies the same to every formatted message and context value,
 * so a secret is masked even when a caller forgets. */
char *log_redact(const char *text, char *out, size_t outlen);
/* The same rules, appending len bytes of text to a growable buffer (no
 * truncation; see buf.h). */
struct buf;
void log_redact_buf(struct buf *out, const char *text, size_t len);

/* Context printed with every message from this thread ("run=42 page=7");
 * a NULL value removes the key. Copied: at most 8 keys of < 32 bytes, values
 * cut at 127 bytes. The field names ts, level, role and msg are refused. */
void log_ctx_set(const char *key, const char *value);
void log_ctx_clear(void);

/* One line per event, written with one write(2) (lines of concurrent
 * threads never interleave). JSON: {"ts":"2024-01-02T03:04:05.678Z",
 * "level":"info","role":"apid","msg":"...", then the context keys}, the
 * message escaped as JSON strings are (invalid UTF-8 becomes U+FFFD). Text:
 * "2024-01-02T03:04:05.678Z INFO  apid run=42: msg", control characters
 * shown as \n, \xNN. Nothing is formatted below the level. A message is
 * cut at 16 KiB (after redaction) and marked " [truncated]". errno is
 * preserved. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
