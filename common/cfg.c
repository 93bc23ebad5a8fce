#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Longest accepted string value when a key sets no max: generous for URLs and
 * key lists, small enough that a stray binary file is refused. */
#define CFG_STR_MAX_DEFAULT 4096
#define CFG_LINE_MAX 8192

/* Role prefixes a shared file may carry for other roles: their keys are
 * ignored there, so one EnvironmentFile can serve several roles. */
static const char *const role_prefixes[] = {"INGESTD_", "REALTIMED_", "APID_"};

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct cfg_key *find_key(const struct cfg_schema *schema, const char *name, size_t len)
{
	for (size_t t = 0; t < schema->ntables; t++)
		for (size_t i = 0; i < schema->tables[t]->count; i++) {
			const struct cfg_key *key = &schema->tables[t]->keys[i];
			if (strlen(key->name) == len && memcmp(key->name, name, len) == 0)
				return key;
		}
	return NULL;
}

static void *field(void *settings, const struct cfg_key *key)
{
	return (char *)settings + key->offset;
}

static const void *cfield(const void *settings, const struct cfg_key *key)
{
	return (const char *)settings + key->offset;
}

static void list_free(struct cfg_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static void value_free(void *settings, const struct cfg_key *key)
{
	if (key->type == CFG_STR) {
		char **slot = field(settings, key);
		free(*slot);
		*slot = NULL;
	} else if (key->type == CFG_LIST) {
		list_free(field(settings, key));
	}
}

/* The value as shown in an error: secrets never echo. */
static const char *shown(const struct cfg_key *key, const char *value)
{
	return (key->flags & CFG_SECRET) ? "(secret)" : value;
}

static const char *type_name(enum cfg_type type)
{
	switch (type) {
	case CFG_INT: return "integer";
	case CFG_DOUBLE: return "number";
	case CFG_BOOL: return "boolean";
	case CFG_STR: return "string";
	case CFG_LIST: return "list";
	case CFG_ENUM: return "enum";
	}
	return "?";
}

static bool parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Index of `text` in "a|b|c", or -1. */
static int enum_index(const char *choices, const char *text)
{
	size_t len = strlen(text);
	int index = 0;
	for (const char *p = choices; p && *p; index++) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == len && strncasecmp(p, text, n) == 0)
			return index;
		p = bar ? bar + 1 : NULL;
	}
	return -1;
}

static bool parse_list(const char *text, struct cfg_list *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (!*text)
		return true;
	size_t count = 1;
	for (const char *p = text; *p; p++)
		count += *p == ',';
	out->items = calloc(count, sizeof(char *));
	if (!out->items) {
		fail(why, whylen, "out of memory");
		return false;
	}
	const char *p = text;
	for (size_t i = 0; i < count; i++) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		while (p < end && isspace((unsigned char)*p))
			p++;
		while (end > p && isspace((unsigned char)end[-1]))
			end--;
		if (end == p) {
			fail(why, whylen, "item %zu is empty", i + 1);
			list_free(out);
			return false;
		}
		out->items[i] = strndup(p, (size_t)(end - p));
		out->count = i + 1;
		p = comma ? comma + 1 : p;
	}
	return true;
}

/* Parse `value` for `key` and store it, replacing any earlier value. */
static bool set_value(void *settings, const struct cfg_key *key, const char *value, char *err,
		      size_t errlen)
{
	char why[256] = "";
	switch (key->type) {
	case CFG_INT: {
		errno = 0;
		char *end = NULL;
		long long v = strtoll(value, &end, 10);
		if (!*value || *end || errno) {
			fail(err, errlen, "%s: '%s' is not an integer; expected an integer from %.0f to %.0f",
			     key->name, shown(key, value), key->min, key->max);
			return false;
		}
		if ((double)v < key->min || (double)v > key->max) {
			fail(err, errlen, "%s: %s is out of range; expected an integer from %.0f to %.0f",
			     key->name, shown(key, value), key->min, key->max);
			return false;
		}
		*(int *)field(settings, key) = (int)v;
		return true;
	}
	case CFG_DOUBLE: {
		errno = 0;
		char *end = NULL;
		double v = strtod(value, &end);
		if (!*value || *end || errno || !isfinite(v)) {
			fail(err, errlen, "%s: '%s' is not a number; expected a number from %g to %g",
			     key->name, shown(key, value), key->min, key->max);
			return false;
		}
		if (v < key->min || v > key->max) {
			fail(err, errlen, "%s: %s is out of range; expected a number from %g to %g",
			     key->name, shown(key, value), key->min, key->max);
			return false;
		}
		*(double *)field(settings, key) = v;
		return true;
	}
	case CFG_BOOL:
		if (!parse_bool(value, field(settings, key))) {
			fail(err, errlen, "%s: '%s' is not a boolean; expected true or false", key->name,
			     shown(key, value));
			return false;
		}
		return true;
	case CFG_ENUM: {
		int index = enum_index(key->choices, value);
		if (index < 0) {
			fail(err, errlen, "%s: '%s' is not allowed; expected one of %s", key->name,
			     shown(key, value), key->choices);
			return false;
		}
		*(int *)field(settings, key) = index;
		return true;
	}
	case CFG_STR: {
		size_t max = key->max > 0 ? (size_t)key->max : CFG_STR_MAX_DEFAULT;
		if (strlen(value) > max) {
			fail(err, errlen, "%s: value is %zu bytes long; expected at most %zu", key->name,
			     strlen(value), max);
			return false;
		}
		if (*value && key->check && !key->check(value, why, sizeof(why))) {
			fail(err, errlen, "%s: '%s' is not valid; expected %s", key->name,
			     shown(key, value), why);
			return false;
		}
		char *copy = strdup(value);
		if (!copy) {
			fail(err, errlen, "%s: out of memory", key->name);
			return false;
		}
		value_free(settings, key);
		*(char **)field(settings, key) = copy;
		return true;
	}
	case CFG_LIST: {
		struct cfg_list list;
		if (!parse_list(value, &list, why, sizeof(why))) {
			fail(err, errlen, "%s: %s; expected comma-separated non-empty values", key->name,
			     why);
			return false;
		}
		if (key->max > 0 && list.count > (size_t)key->max) {
			fail(err, errlen, "%s: %zu items; expected at most %.0f", key->name, list.count,
			     key->max);
			list_free(&list);
			return false;
		}
		value_free(settings, key);
		*(struct cfg_list *)field(settings, key) = list;
		return true;
	}
	}
	fail(err, errlen, "%s: unknown type", key->name);
	return false;
}

static bool has_other_role_prefix(const struct cfg_schema *schema, const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(role_prefixes); i++)
		if (strcmp(role_prefixes[i], schema->prefix) != 0 &&
		    strncmp(name, role_prefixes[i], strlen(role_prefixes[i])) == 0)
			return true;
	return false;
}

/* Strip surrounding whitespace and one pair of matching quotes, in place. */
static char *trim_value(char *value)
{
	while (isspace((unsigned char)*value))
		value++;
	size_t len = strlen(value);
	while (len > 0 && isspace((unsigned char)value[len - 1]))
		value[--len] = '\0';
	if (len >= 2 && (value[0] == '"' || value[0] == '\'') && value[len - 1] == value[0]) {
		value[len - 1] = '\0';
		value++;
	}
	return value;
}

static bool load_file(const struct cfg_schema *schema, void *settings, const char *path, char *err,
		      size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fail(err, errlen, "--config %s: %s", path, strerror(errno));
		return false;
	}
	char line[CFG_LINE_MAX];
	int lineno = 0;
	bool ok = true;
	while (ok && fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			fail(err, errlen, "%s:%d: line longer than %d bytes", path, lineno, CFG_LINE_MAX - 2);
			ok = false;
			break;
		}
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		if (strncmp(p, "export ", 7) == 0)
			p += 7;
		char *eq = strchr(p, '=');
		if (!eq) {
			fail(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
			ok = false;
			break;
		}
		char *name_end = eq;
		while (name_end > p && isspace((unsigned char)name_end[-1]))
			name_end--;
		*name_end = '\0';
		const struct cfg_key *key = find_key(schema, p, strlen(p));
		if (!key) {
			if (has_other_role_prefix(schema, p))
				continue;
			fail(err, errlen, "%s:%d: %s: unknown key for %s (see --help-config)", path, lineno,
			     p, schema->role);
			ok = false;
			break;
		}
		ok = set_value(settings, key, trim_value(eq + 1), err, errlen);
	}
	if (ok && ferror(f)) {
		fail(err, errlen, "--config %s: read error", path);
		ok = false;
	}
	fclose(f);
	return ok;
}

bool cfg_load(const struct cfg_schema *schema, void *settings, const char *file,
	      char *const *envp, char *err, size_t errlen)
{
	for (size_t t = 0; t < schema->ntables; t++)
		for (size_t i = 0; i < schema->tables[t]->count; i++) {
			const struct cfg_key *key = &schema->tables[t]->keys[i];
			if (!set_value(settings, key, key->def ? key->def : "", err, errlen))
				goto fail; /* a bad default is a programming error, reported all the same */
		}
	if (file && !load_file(schema, settings, file, err, errlen))
		goto fail;
	size_t prefix_len = strlen(schema->prefix);
	for (char *const *env = envp; env && *env; env++) {
		const char *eq = strchr(*env, '=');
		if (!eq)
			continue;
		size_t name_len = (size_t)(eq - *env);
		const struct cfg_key *key = find_key(schema, *env, name_len);
		if (!key) {
			if (name_len >= prefix_len && strncmp(*env, schema->prefix, prefix_len) == 0) {
				fail(err, errlen, "%.*s: unknown key for %s (see --help-config)",
				     (int)name_len, *env, schema->role);
				goto fail;
			}
			continue;
		}
		if (!set_value(settings, key, eq + 1, err, errlen))
			goto fail;
	}
	return true;
fail:
	cfg_free(schema, settings);
	return false;
}

void cfg_free(const struct cfg_schema *schema, void *settings)
{
	if (!settings)
		return;
	for (size_t t = 0; t < schema->ntables; t++)
		for (size_t i = 0; i < schema->tables[t]->count; i++)
			value_free(settings, &schema->tables[t]->keys[i]);
}

void cfg_register_secrets(const struct cfg_schema *schema, const void *settings)
{
	for (size_t t = 0; t < schema->ntables; t++)
		for (size_t i = 0; i < schema->tables[t]->count; i++) {
			const struct cfg_key *key = &schema->tables[t]->keys[i];
			if (!(key->flags & CFG_SECRET))
				continue;
			if (key->type == CFG_STR) {
				const char *value = *(char *const *)cfield(settings, key);
				if (value)
					log_add_secret(value);
			} else if (key->type == CFG_LIST) {
				const struct cfg_list *list = cfield(settings, key);
				for (size_t k = 0; k < list->count; k++)
					log_add_secret(list->items[k]);
			}
		}
}

/* The value as text, for --print-config; secrets masked. */
static void format_value(const struct cfg_key *key, const void *settings, char *out, size_t outlen)
{
	switch (key->type) {
	case CFG_INT:
		snprintf(out, outlen, "%d", *(const int *)cfield(settings, key));
		return;
	case CFG_DOUBLE:
		snprintf(out, outlen, "%g", *(const double *)cfield(settings, key));
		return;
	case CFG_BOOL:
		snprintf(out, outlen, "%s", *(const bool *)cfield(settings, key) ? "true" : "false");
		return;
	case CFG_ENUM: {
		int index = *(const int *)cfield(settings, key);
		const char *p = key->choices;
		for (int i = 0; i < index && p; i++) {
			p = strchr(p, '|');
			p = p ? p + 1 : NULL;
		}
		snprintf(out, outlen, "%.*s", p ? (int)strcspn(p, "|") : 0, p ? p : "");
		return;
	}
	case CFG_STR: {
		const char *value = *(char *const *)cfield(settings, key);
		value = value ? value : "";
		if ((key->flags & CFG_SECRET) && *value)
			snprintf(out, outlen, "***");
		else if (key->flags & CFG_URLISH)
			log_redact(value, out, outlen);
		else
			snprintf(out, outlen, "%s", value);
		return;
	}
	case CFG_LIST: {
		const struct cfg_list *list = cfield(settings, key);
		size_t used = 0;
		out[0] = '\0';
		for (size_t i = 0; i < list->count && used < outlen; i++)
			used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? "," : "",
						 (key->flags & CFG_SECRET) ? "***" : list->items[i]);
		return;
	}
	}
}

void cfg_print(const struct cfg_schema *schema, const void *settings, FILE *out)
{
	char value[CFG_STR_MAX_DEFAULT + 64];
	for (size_t t = 0; t < schema->ntables; t++)
		for (size_t i = 0; i < schema->tables[t]->count; i++) {
			const struct cfg_key *key = &schema->tables[t]->keys[i];
			format_value(key, settings, value, sizeof(value));
			fprintf(out, "%s=%s\n", key->name, value);
		}
}

static void print_range(const struct cfg_key *key, FILE *out)
{
	switch (key->type) {
	case CFG_INT: fprintf(out, "%.0f..%.0f", key->min, key->max); break;
	case CFG_DOUBLE: fprintf(out, "%g..%g", key->min, key->max); break;
	case CFG_ENUM: fprintf(out, "%s", key->choices); break;
	case CFG_BOOL: fprintf(out, "true, false"); break;
	case CFG_STR:
	case CFG_LIST:
		if (key->max > 0)
			fprintf(out, "at most %.0f %s", key->max, key->type == CFG_STR ? "bytes" : "items");
		break;
	}
}

void cfg_print_reference(const struct cfg_schema *schema, FILE *out)
{
	fprintf(out, "| Key | Type | Range | Default | Reload | Description |\n");
	fprintf(out, "|---|---|---|---|---|---|\n");
	for (size_t t = 0; t < schema->ntables; t++)
		for (size_t i = 0; i < schema->tables[t]->count; i++) {
			const struct cfg_key *key = &schema->tables[t]->keys[i];
			fprintf(out, "| `%s` | %s%s | ", key->name, type_name(key->type),
				(key->flags & CFG_SECRET) ? ", secret" : "");
			print_range(key, out);
			fprintf(out, " | %s%s%s | %s | %s |\n", key->def && *key->def ? "`" : "",
				key->def && *key->def ? key->def : "(empty)",
				key->def && *key->def ? "`" : "", (key->flags & CFG_RELOAD) ? "yes" : "no",
				key->doc);
		}
}

bool cfg_check_redis_url(const char *value, char *why, size_t whylen)
{
	if (strncmp(value, "redis://", 8) == 0 || strncmp(value, "unix://", 7) == 0)
		return true;
	fail(why, whylen, "redis://[:password@]host:port/db or unix:///path");
	return false;
}

bool cfg_check_http_url(const char *value, char *why, size_t whylen)
{
	const char *rest = NULL;
	if (strncmp(value, "http://", 7) == 0)
		rest = value + 7;
	else if (strncmp(value, "https://", 8) == 0)
		rest = value + 8;
	if (rest && *rest && *rest != '/' && !strpbrk(value, " \t\r\n?#"))
		return true;
	fail(why, whylen, "an http:// or https:// URL without query or spaces");
	return false;
}
