#include "settings.h"

#include <stddef.h>
#include <unistd.h>

#include "log.h"

/* The public API's base URL: production default; tests and `make run` point
 * UPSTREAM_URL at the simulator. */
#define UPSTREAM_URL_DEFAULT "https://apis.data.go.kr/B552584/EvCharger"

static const struct cfg_key common_keys[] = {
	{"DATABASE_URL", CFG_STR, 0, 0, "postgresql:///evcharger", CFG_URLISH,
	 "PostgreSQL: libpq URI or conninfo (passwords are masked in logs)",
	 offsetof(struct common_settings, database_url), NULL, NULL},
	{"REDIS_URL", CFG_STR, 0, 0, "redis://127.0.0.1:6379/0", CFG_URLISH,
	 "Redis: redis://[:password@]host:port/db or unix:///path[?db=N]",
	 offsetof(struct common_settings, redis_url), NULL, cfg_check_redis_url},
	{"UPSTREAM_URL", CFG_STR, 0, 0, UPSTREAM_URL_DEFAULT, 0,
	 "Base URL of the public API, ending in /B552584/EvCharger",
	 offsetof(struct common_settings, upstream_url), NULL, cfg_check_http_url},
	{"UPSTREAM_KEYS", CFG_LIST, 0, 64, "", CFG_SECRET | CFG_RELOAD,
	 "Comma-separated service keys, used in turn when one's daily quota is spent",
	 offsetof(struct common_settings, upstream_keys), NULL, NULL},
	{"LOG_LEVEL", CFG_ENUM, 0, 0, "info", CFG_RELOAD, "Least severe level logged",
	 offsetof(struct common_settings, log_level), "error|warn|info|debug", NULL},
	{"LOG_FORMAT", CFG_ENUM, 0, 0, "auto", CFG_RELOAD,
	 "auto: readable text on a terminal, JSON lines otherwise",
	 offsetof(struct common_settings, log_format), "auto|json|text", NULL},
};

const struct cfg_table common_cfg_table = {common_keys, ARRAY_LEN(common_keys)};

void settings_apply_logging(const struct cfg_schema *schema, const void *settings)
{
	const struct common_settings *common = settings;
	log_set_level((enum log_level)common->log_level);
	if (common->log_format == 1)
		log_set_json(true);
	else if (common->log_format == 2)
		log_set_json(false);
	else
		log_set_json(!isatty(2));
	log_clear_secrets();
	cfg_register_secrets(schema, settings);
}
