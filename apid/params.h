/* params: a request's query string, decoded and checked strictly.
 * Owns the rules every parameter follows: percent-decoding ('+' is a space,
 * as browsers' URLSearchParams send it), valid UTF-8 without control
 * characters in names and values, numbers in plain decimal notation only
 * (no exponent, hex, inf or nan; the map client sends "50.00"), one value
 * for single-valued parameters, lists comma-separated and/or repeated
 * (scope=a&scope=b), at most PARAM_LIST_MAX items, none empty, each at most
 * PARAM_TEXT_MAX characters. Every failure is one line naming the parameter
 * and the reason ("latitude: 'abc' is not a number"); the caller sends it
 * as a 400 body. Unknown parameters are ignored (cache busters, analytics
 * tags), never an error.
 *
 * Pure; the parsed set owns one allocation (params_free). */
#ifndef APID_PARAMS_H
#define APID_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

#define PARAMS_MAX     64  /* name=value pairs in one query */
#define PARAM_LIST_MAX 100 /* items in one list */
#define PARAM_TEXT_MAX 100 /* characters (code points) in one text value */

struct param_error {
	char text[256];
};

struct param {
	const char *name;  /* decoded, NUL-terminated */
	const char *value; /* decoded, NUL-terminated (no NUL inside: refused) */
	size_t value_len;
};

struct params {
	struct param items[PARAMS_MAX];
	size_t count;
	char *storage; /* owned: the decoded text the items point into */
};

/* Decode `query` (the text after '?', without '#...'; NULL or "" for none)
 * of `len` bytes. */
bool params_parse(struct params *p, const char *query, size_t len,
		  struct param_error *err) MUSTCHECK;
void params_free(struct params *p);

enum param_get {
	PARAM_MISSING, /* not given */
	PARAM_OK,
	PARAM_BAD, /* given but refused: err says why */
};

/* The single value of `name`; given twice is PARAM_BAD. */
enum param_get params_one(const struct params *p, const char *name, const char **value,
			  struct param_error *err);

/* A decimal number in [min, max]; with min_exclusive, (min, max]. */
enum param_get params_number(const struct params *p, const char *name, double min, double max,
			     bool min_exclusive, double *out, struct param_error *err);

/* A decimal integer in [min, max]. */
enum param_get params_integer(const struct params *p, const char *name, long min, long max,
			      long *out, struct param_error *err);

/* Text of 1..max_chars code points. */
enum param_get params_text(const struct params *p, const char *name, size_t max_chars,
			   const char **out, struct param_error *err);

/* All values of `name` (every occurrence, each split at commas). An empty
 * value ("companyNames=") is an empty list, as the map client sends when no
 * filter is chosen: PARAM_OK with count 0. */
struct param_list {
	const char *items[PARAM_LIST_MAX]; /* NUL-terminated, into storage */
	size_t count;
	char *storage; /* owned */
};
enum param_get params_list(const struct params *p, const char *name, struct param_list *out,
			   struct param_error *err);
void param_list_free(struct param_list *list);

/* Strict decimal text ("-12.50") to a double; the number rules above. */
bool params_parse_decimal(const char *text, size_t len, double *out) MUSTCHECK;

/* Percent-decode one path segment into out (size outlen); false when the
 * encoding is malformed, the result is not valid UTF-8, holds a control
 * character or does not fit. */
bool params_decode_segment(const char *seg, size_t len, char *out, size_t outlen) MUSTCHECK;

#endif
