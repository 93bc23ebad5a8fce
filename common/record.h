/* record: one upstream charger item, as received and as normalized.
 *
 * Owns the single place where an item's fields are checked and cleaned,
 * shared by ingestd (getChargerInfo, the full master item) and realtimed
 * (getChargerStatus, the status item). Two stages:
 *
 *  - struct record_raw: the item as it arrived, built by the page parser one
 *    key at a time (record_raw_add): each value with its JSON type, in
 *    arrival order, unknown keys included, so a rejected item's raw text
 *    (record_raw_json) shows what the upstream sent. A field repeated in one
 *    item keeps its last value (as a JSON object reader would).
 *  - struct record: the normalized values (record_normalize): strings trimmed
 *    of ASCII and ideographic spaces, valid UTF-8 and free of NUL, each under
 *    its length limit, empty text read as absent (NULL); enums through
 *    model.h (unknown charger type codes kept, unknown status codes read as
 *    STATUS_UNKNOWN); Korea-time dates through kst.h; numbers accepted as
 *    JSON strings or JSON numbers; coordinates inside South Korea, a swapped
 *    lat/lng pair repaired (and flagged), impossible ones rejected.
 *
 * A rejected item carries a short machine-readable reason code (stable: it
 * is stored in ingest_reject.reason and counted in metrics) and one line of
 * text naming the field and the value's problem. Rules, per field, are in the
 * table at the top of record.c and in docs/ingest.md.
 *
 * Memory: both structs own a growable buffer reused from item to item
 * (record_raw_reset, record_normalize overwrite), so a page's items cost no
 * allocation once the buffers have grown to the largest item. */
#ifndef EV_RECORD_H
#define EV_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base.h"
#include "buf.h"
#include "json.h"

/* The fields the upstream documents, in one order every user shares (the
 * staging columns of ingestd follow it). */
enum record_field {
	RF_STAT_ID,      /* station id: 2-letter operator prefix + digits */
	RF_CHGER_ID,     /* charger id within the station: "01" */
	RF_STAT_NM,      /* station name */
	RF_CHGER_TYPE,   /* charger type code "01".."99" */
	RF_ADDR,         /* road address */
	RF_ADDR_DETAIL,  /* address detail */
	RF_LOCATION,     /* detail location */
	RF_USE_TIME,     /* opening hours, free text */
	RF_LAT,          /* WGS84 latitude */
	RF_LNG,          /* WGS84 longitude */
	RF_BUSI_ID,      /* operator id */
	RF_BNM,          /* operator short name */
	RF_BUSI_NM,      /* operator full name */
	RF_BUSI_CALL,    /* operator phone */
	RF_STAT,         /* status code */
	RF_STAT_UPD_DT,  /* when stat last changed, Korea time */
	RF_LAST_TSDT,    /* last charge start */
	RF_LAST_TEDT,    /* last charge end */
	RF_NOW_TSDT,     /* current charge start */
	RF_OUTPUT,       /* kW */
	RF_METHOD,       /* "단독" / "동시" */
	RF_POWER_TYPE,   /* free text */
	RF_ZCODE,        /* province code, 2 digits */
	RF_ZSCODE,       /* district code, 5 digits */
	RF_KIND,         /* facility kind "A0" */
	RF_KIND_DETAIL,  /* facility kind detail "A001" */
	RF_PARKING_FREE, /* Y/N */
	RF_NOTE,         /* free text */
	RF_LIMIT_YN,     /* Y/N: access limited (private) */
	RF_LIMIT_DETAIL, /* free text */
	RF_DEL_YN,       /* Y/N */
	RF_DEL_DETAIL,   /* free text */
	RF_TRAFFIC_YN,   /* Y/N */
	RF_YEAR,         /* install year */
	RF_FLOOR_NUM,    /* floor */
	RF_FLOOR_TYPE,   /* floor type */
	RECORD_NFIELDS
};

/* The upstream's key for a field ("statId"); NULL outside the enum. */
const char *record_field_name(enum record_field field);
/* The field named by an upstream key, or -1 for an unknown key. */
int record_field_lookup(const char *key, size_t len);

enum record_mode {
	RECORD_MASTER, /* getChargerInfo: the full item */
	RECORD_STATUS, /* getChargerStatus: busiId statId chgerId stat statUpdDt
			  lastTsdt lastTedt nowTsdt */
};

/* A value's JSON type as received. */
enum record_json {
	RECORD_JSON_ABSENT = 0, /* key not in the item */
	RECORD_JSON_STRING,
	RECORD_JSON_NUMBER,
	RECORD_JSON_BOOL,
	RECORD_JSON_NULL,
	RECORD_JSON_CONTAINER, /* an object or array where a scalar belongs */
};

/* One key/value of the item, in arrival order. Offsets into record_raw.text. */
struct record_entry {
	uint32_t key_off, key_len;
	uint32_t val_off, val_len;
	uint8_t type;  /* enum record_json */
	int16_t field; /* enum record_field, -1 unknown key */
};

struct record_raw {
	struct buf text;              /* owned: keys and values back to back */
	struct record_entry *entries; /* owned; arrival order */
	size_t nentries, entries_cap;
	int16_t by_field[RECORD_NFIELDS]; /* index into entries, -1 absent */
	bool is_not_object;           /* the item was not a JSON object */
	bool failed;                  /* out of memory while building */
};

void record_raw_init(struct record_raw *raw);
void record_raw_free(struct record_raw *raw);
/* Empty it for the next item, keeping the memory. */
void record_raw_reset(struct record_raw *raw);
/* Add one key with its value (text as json_stream delivers it: decoded
 * string, or a number's literal text; NULL for null/bool/container; for
 * JSON_BOOL pass "true"/"false"). Sticky failure on out of memory. */
void record_raw_add(struct record_raw *raw, const char *key, size_t key_len,
		    enum record_json type, const char *text, size_t len);
/* The item was not an object (a string or number in the item list): the
 * value is kept as the raw text and normalization rejects it. */
void record_raw_set_not_object(struct record_raw *raw, enum record_json type, const char *text,
			       size_t len);
/* The raw value of a field: its text and JSON type (ABSENT when missing). */
enum record_json record_raw_get(const struct record_raw *raw, enum record_field field,
				const char **text, size_t *len);
/* Append the item as a JSON object (arrival order, unknown keys included,
 * JSON types as received) to out: the reject's raw text. Invalid UTF-8 is
 * written as U+FFFD (json_escape), so the text is always storable. Truncated
 * to about max_bytes (0: no limit) at a key boundary, ending in
 * `"...":"truncated"`. */
void record_raw_json(const struct record_raw *raw, struct buf *out, size_t max_bytes);

/* Reason codes of a rejected item (ingest_reject.reason). */
enum record_reason {
	RECORD_OK = 0,
	RECORD_NOT_OBJECT,     /* "not_object": the item is not a JSON object */
	RECORD_MISSING,        /* "missing_field": a required field is absent or empty */
	RECORD_BAD_TYPE,       /* "bad_type": an object, array or boolean where text belongs */
	RECORD_BAD_UTF8,       /* "bad_utf8": a string that is not valid UTF-8 */
	RECORD_BAD_TEXT,       /* "bad_text": a NUL or other control character in text */
	RECORD_TOO_LONG,       /* "too_long": over the field's length limit */
	RECORD_BAD_ID,         /* "bad_id": statId/chgerId/busiId not of the documented form */
	RECORD_BAD_CODE,       /* "bad_code": chgerType, stat, zcode... not a code */
	RECORD_BAD_DATE,       /* "bad_date": not a YYYYMMDDHHMMSS Korea time that exists */
	RECORD_BAD_NUMBER,     /* "bad_number": output/year not a plausible number */
	RECORD_BAD_FLAG,       /* "bad_flag": a Y/N field holding something else */
	RECORD_BAD_COORD,      /* "bad_coord": coordinates absent, zero or not numbers */
	RECORD_COORD_OUTSIDE,  /* "coord_outside": not inside South Korea, even swapped */
	RECORD_REASON_COUNT
};

/* "missing_field" ...; "ok" for RECORD_OK. */
const char *record_reason_code(enum record_reason reason);

/* Korea's extent with a margin (Jeju and Marado in the south, Dokdo in the
 * east, the islands of the Yellow Sea in the west). */
#define RECORD_LAT_MIN 33.0
#define RECORD_LAT_MAX 38.7
#define RECORD_LNG_MIN 124.5
#define RECORD_LNG_MAX 132.0

/* Which of the Y/N fields: record.flag[] index. */
enum record_flag { RFL_PARKING_FREE, RFL_LIMIT, RFL_DEL, RFL_TRAFFIC, RECORD_NFLAGS };
/* Which of the dates: record.time[] index. */
enum record_time { RT_STAT_UPD, RT_LAST_TS, RT_LAST_TE, RT_NOW_TS, RECORD_NTIMES };

struct record {
	enum record_mode mode;
	/* Normalized text of every field (typed fields in canonical form:
	 * dates "YYYYMMDDHHMMSS", chgerType "04", lat/lng and output as the
	 * shortest decimal text), or NULL when absent or empty. Points into
	 * store; valid until the next record_normalize. */
	const char *text[RECORD_NFIELDS];
	uint32_t len[RECORD_NFIELDS];
	int chger_type;            /* 1..99, 0 absent (status mode) */
	int stat;                  /* enum model_status, 0 absent */
	time_t time[RECORD_NTIMES];
	bool has_time[RECORD_NTIMES];
	double lat, lng;           /* master mode: always set */
	bool coord_swapped;        /* lat and lng arrived swapped and were repaired */
	double output_kw;
	bool has_output;
	int zcode;                 /* 0 absent */
	int year;                  /* 0 absent */
	signed char flag[RECORD_NFLAGS]; /* 1 Y, 0 N, -1 absent */
	struct buf store;          /* owned: the normalized text */
	/* On rejection: */
	enum record_reason reason;
	int reason_field;          /* enum record_field, -1 for the item itself */
	char detail[160];          /* "lat: '0' is not inside South Korea" */
};

void record_init(struct record *rec);
void record_free(struct record *rec);

/* Normalize raw into rec (overwriting its previous content). RECORD_OK, or
 * the first problem found (fields in enum order), with rec->reason,
 * reason_field and detail set. rec->coord_swapped tells a repaired item. */
enum record_reason record_normalize(const struct record_raw *raw, enum record_mode mode,
				    struct record *rec) MUSTCHECK;

/* Trim ASCII whitespace and U+3000 (ideographic space) at both ends: the
 * padding the upstream sends. Returns the new length; *start moves. */
size_t record_trim(const char **start, size_t len);

#endif
