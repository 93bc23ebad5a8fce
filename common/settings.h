/* settings: the keys every role shares (names operators and tools already
 * use) and the struct they land in. A role's own settings struct starts with
 * `struct common_settings common;` and adds its table after common_cfg_table. */
#ifndef EV_SETTINGS_H
#define EV_SETTINGS_H

#include "cfg.h"

struct common_settings {
	char *database_url;           /* DATABASE_URL: libpq URI or conninfo */
	char *redis_url;              /* REDIS_URL */
	char *upstream_url;           /* UPSTREAM_URL: base ending in /B552584/EvCharger */
	struct cfg_list upstream_keys; /* UPSTREAM_KEYS: secret */
	int log_level;                /* LOG_LEVEL: enum log_level */
	int log_format;               /* LOG_FORMAT: 0 auto, 1 json, 2 text */
};

extern const struct cfg_table common_cfg_table;

/* Apply LOG_LEVEL/LOG_FORMAT and register secrets; call after each load. */
void settings_apply_logging(const struct cfg_schema *schema, const void *settings);

#endif
