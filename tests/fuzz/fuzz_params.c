/* Fuzz apid's query-string parsing (apid/params.c): params_parse on the
 * input as a query, then every getter on every name it produced and on the
 * names apid's routes read, plus the number and path-segment decoders on
 * the raw bytes. Never crash; whatever is accepted obeys params.h: values
 * hold no NUL, lists stay within PARAM_LIST_MAX, integers and numbers
 * within the range asked, a refusal always says why. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The module is apid's; harnesses link only libcommon, so compile it in. */
#include "../../apid/params.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The names apid reads (area.c, station.c, lookup.c). */
static const char *const route_names[] = {
	"latitude",    "longitude",	   "latitudeDelta", "longitudeDelta",
	"companyNames", "chargerTypes",	   "capacities",    "dayOfWeek",
	"stationIds",  "scope",		   "q",		    "page",
	"limit",       "regions",	   "latitudeDivisionSize", "longitudeDivisionSize",
};

static void check_error(enum param_get got, const struct param_error *err)
{
	if (got == PARAM_BAD && err->text[0] == '\0')
		abort();
}

static void probe(const struct params *p, const char *name)
{
	struct param_error err;
	const char *value;
	err.text[0] = '\0';
	enum param_get got = params_one(p, name, &value, &err);
	check_error(got, &err);
	if (got == PARAM_OK && !value)
		abort();
	double d;
	err.text[0] = '\0';
	got = params_number(p, name, -90, 90, true, &d, &err);
	check_error(got, &err);
	if (got == PARAM_OK && (!isfinite(d) || d <= -90 || d > 90))
		abort();
	long l;
	err.text[0] = '\0';
	got = params_integer(p, name, 1, 100, &l, &err);
	check_error(got, &err);
	if (got == PARAM_OK && (l < 1 || l > 100))
		abort();
	err.text[0] = '\0';
	got = params_text(p, name, PARAM_TEXT_MAX, &value, &err);
	check_error(got, &err);
	if (got == PARAM_OK && (!value || !*value))
		abort();
	struct param_list list;
	err.text[0] = '\0';
	got = params_list(p, name, &list, &err);
	check_error(got, &err);
	if (got == PARAM_OK) {
		if (list.count > PARAM_LIST_MAX)
			abort();
		for (size_t i = 0; i < list.count; i++)
			if (!list.items[i] || !*list.items[i])
				abort();
		param_list_free(&list);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size heap copy: ASan sees any read past the query */
	char *query = malloc(size ? size : 1);
	if (!query)
		return 0;
	memcpy(query, data, size);
	struct params p;
	struct param_error err;
	err.text[0] = '\0';
	if (params_parse(&p, query, size, &err)) {
		if (p.count > PARAMS_MAX)
			abort();
		for (size_t i = 0; i < p.count; i++) {
			const struct param *it = &p.items[i];
			if (!it->name || !it->value || strlen(it->value) != it->value_len)
				abort();
			probe(&p, it->name);
		}
		for (size_t i = 0; i < sizeof(route_names) / sizeof(route_names[0]); i++)
			probe(&p, route_names[i]);
	} else if (err.text[0] == '\0') {
		abort();
	}
	params_free(&p); /* also after a refusal, as apid's routes do */
	double d;
	if (params_parse_decimal(query, size, &d) && !isfinite(d))
		abort();
	char out[128];
	if (params_decode_segment(query, size, out, sizeof(out)) && strlen(out) >= sizeof(out))
		abort();
	free(query);
	return 0;
}
