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
 * as *** in every later message. Values shorter than 4 bytes are ignored, as
 * masking them would garble ordinary text. */
void log_add_secret(const char *secret);
void log_clear_secrets(void);

/* Copy `text` into out (always NUL-terminated, truncated to outlen) with the
 * secrets of URLs and connection strings masked: serviceKey=... query
 * values, user:password@ in URLs, password=... in conninfo, plus every
 * registered secret. Returns out. */
char *log_redact(const char *text, char *out, size_t outlen);

/* Context printed with every message from this thread ("run=42 page=7");
 * NULL clears. Copied. */
void log_ctx_set(const char *key, const char *value);
void log_ctx_clear(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
