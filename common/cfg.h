/* cfg: typed settings from the environment and an optional KEY=VALUE file.
 * Owns the rules every role's settings follow: one table row per key (type,
 * bounds, default, flags, doc line and where the value lands in the role's
 * settings struct), validation at load (a bad value is refused with one line
 * naming the key, the problem and the expected form), the environment winning
 * over the file, unknown keys of the role's own prefix refused, and the
 * printing of effective settings with secrets masked (--print-config) and of
 * the reference table (--help-config, the source of docs/config.md).
 *
 * A role's settings struct embeds `struct common_settings` as its first
 * member, so the common table's offsets hold for every role. Values are
 * loaded into a fresh struct; callers swap pointers, so a failed reload
 * leaves the running settings untouched. */
#ifndef EV_CFG_H
#define EV_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base.h"

enum cfg_type {
	CFG_INT,    /* int; min..max */
	CFG_DOUBLE, /* double; min..max */
	CFG_BOOL,   /* bool; true/false, yes/no, on/off, 1/0 */
	CFG_STR,    /* char *, owned by the settings struct; max = max length (0: 4096) */
	CFG_LIST,   /* struct cfg_list: comma-separated, items trimmed, empty items refused */
	CFG_ENUM,   /* int: index into `choices` ("error|warn|info|debug") */
};

enum {
	CFG_SECRET = 1u << 0, /* printed as ***; values registered with log_add_secret */
	CFG_URLISH = 1u << 1, /* printed through log_redact (passwords masked) */
	CFG_RELOAD = 1u << 2, /* takes effect on SIGHUP; others need a restart */
};

struct cfg_list {
	char **items;
	size_t count;
};

struct cfg_key {
	const char *name;
	enum cfg_type type;
	double min, max;
	const char *def; /* default, in the same text form as the environment */
	unsigned flags;
	const char *doc;
	size_t offset;       /* offsetof(role settings struct, field) */
	const char *choices; /* CFG_ENUM only */
	/* Extra validation beyond type and bounds (URL shapes); NULL if none.
	 * Writes the expected form into why on failure. */
	bool (*check)(const char *value, char *why, size_t whylen);
};

struct cfg_table {
	const struct cfg_key *keys;
	size_t count;
};

/* What a role hands cfg: its prefix ("APID_") and its tables, common first. */
struct cfg_schema {
	const char *role;   /* "apid" */
	const char *prefix; /* "APID_" */
	const struct cfg_table *const *tables;
	size_t ntables;
};

/* Fill `settings` (zeroed by the caller, sized for the schema) from defaults,
 * then `file` (NULL: none), then the environment `envp`. On failure returns
 * false, writes one line into err ("APID_PORT: 'abc' is not an integer;
 * expected an integer from 0 to 65535") and frees what it set. */
bool cfg_load(const struct cfg_schema *schema, void *settings, const char *file,
	      char *const *envp, char *err, size_t errlen) MUSTCHECK;
/* Free what cfg_load allocated; settings may be half-loaded. */
void cfg_free(const struct cfg_schema *schema, void *settings);
/* Register every CFG_SECRET value with log_add_secret. */
void cfg_register_secrets(const struct cfg_schema *schema, const void *settings);

/* --print-config: KEY=value lines, secrets masked. */
void cfg_print(const struct cfg_schema *schema, const void *settings, FILE *out);
/* --help-config: a Markdown table of every key (name, type, range, default,
 * reload, doc); docs/config.md holds these tables and a test diffs them. */
void cfg_print_reference(const struct cfg_schema *schema, FILE *out);

/* Shared checks for `check`. */
bool cfg_check_redis_url(const char *value, char *why, size_t whylen);
bool cfg_check_http_url(const char *value, char *why, size_t whylen);

#endif
