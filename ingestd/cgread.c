#include "cgread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What became of a key. */
enum key_state {
	KEY_LISTED,   /* scanned, not read yet */
	KEY_LOADED,   /* value read and handed to the sink */
	KEY_REJECTED, /* value refused */
	KEY_VANISHED, /* deleted since the SCAN */
};

/* One scanned key: "statId\0chgerId\0" at names + off. */
struct key {
	uint32_t off;
	uint32_t last_sample; /* KEY_LOADED: the value's marker */
	uint8_t stat_len;
	uint8_t state;
};

/* The reader. Owns names, keys and values; borrows r. */
struct cgread {
	struct rds *r;
	int batch_keys;
	char *names; /* owned: every key's ids */
	size_t names_len, names_cap;
	struct key *keys; /* owned, sorted after the scan */
	size_t nkeys, keys_cap;
	struct cgvalue *values; /* owned: one batch */
	size_t values_cap;
	struct cgvalue_charger *chargers; /* owned: one station's, for the sink */
	size_t chargers_cap;
	struct cgread_stats stats;
};

#define SCAN_COUNT "1000"

struct cgread *cgread_new(struct rds *r, int batch_keys)
{
	struct cgread *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return NULL;
	rd->r = r;
	rd->batch_keys = batch_keys > 0 ? batch_keys : 1000;
	return rd;
}

void cgread_free(struct cgread *rd)
{
	if (!rd)
		return;
	free(rd->names);
	free(rd->keys);
	free(rd->values);
	free(rd->chargers);
	free(rd);
}

size_t cgread_keys(const struct cgread *rd)
{
	return rd->nkeys;
}

const struct cgread_stats *cgread_stats(const struct cgread *rd)
{
	return &rd->stats;
}

static const char *stat_of(const struct cgread *rd, const struct key *k)
{
	return rd->names + k->off;
}

static const char *chger_of(const struct cgread *rd, const struct key *k)
{
	return rd->names + k->off + k->stat_len + 1;
}

bool cgread_loaded(const struct cgread *rd, size_t i, const char **stat_id, const char **chger_id,
		   uint32_t *last_sample)
{
	const struct key *k = &rd->keys[i];
	if (k->state != KEY_LOADED)
		return false;
	*stat_id = stat_of(rd, k);
	*chger_id = chger_of(rd, k);
	*last_sample = k->last_sample;
	return true;
}

/* Grow *array (of *cap elements of size each) to hold at least need. */
static bool grow(void *array, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 1024;
	while (n < need)
		n *= 2;
	void *p = realloc(*(void **)array, n * size);
	if (!p)
		return false;
	*(void **)array = p;
	*cap = n;
	return true;
}

/* ---- SCAN ---- */

static void reject(const struct cgread_sink *sink, enum cgvalue_reject reason, const char *stat_id,
		   const char *chger_id, const char *detail, const void *raw, size_t raw_len)
{
	if (!sink->reject)
		return;
	const struct cgread_reject rej = {reason, stat_id, chger_id, detail, raw, raw_len};
	sink->reject(sink->arg, &rej);
}

static bool add_key(struct cgread *rd, const struct cgread_sink *sink, const char *name, size_t len)
{
	char stat_id[CGVALUE_ID_MAX + 1], chger_id[CGVALUE_ID_MAX + 1], why[128];
	if (!cgvalue_parse_key(name, len, stat_id, chger_id, why, sizeof(why))) {
		rd->stats.bad_keys++;
		reject(sink, CGVALUE_BAD_KEY, NULL, NULL, why, name, len);
		return true;
	}
	size_t stat_len = strlen(stat_id), chger_len = strlen(chger_id);
	size_t need = rd->names_len + stat_len + chger_len + 2;
	if (need > UINT32_MAX || !grow(&rd->names, &rd->names_cap, need, 1) ||
	    !grow(&rd->keys, &rd->keys_cap, rd->nkeys + 1, sizeof(struct key)))
		return false;
	struct key *k = &rd->keys[rd->nkeys++];
	*k = (struct key){.off = (uint32_t)rd->names_len, .stat_len = (uint8_t)stat_len};
	memcpy(rd->names + rd->names_len, stat_id, stat_len + 1);
	memcpy(rd->names + rd->names_len + stat_len + 1, chger_id, chger_len + 1);
	rd->names_len = need;
	return true;
}

/* Byte order of (statId, chgerId): PostgreSQL's order for these ids in a
 * C or C.UTF-8 database, so the rows arrive in primary-key order. */
static int key_cmp(const void *a, const void *b, void *arg)
{
	const struct cgread *rd = arg;
	const struct key *x = a, *y = b;
	int c = strcmp(stat_of(rd, x), stat_of(rd, y));
	return c ? c : strcmp(chger_of(rd, x), chger_of(rd, y));
}

static void sort_unique(struct cgread *rd)
{
	if (rd->nkeys == 0)
		return;
	qsort_r(rd->keys, rd->nkeys, sizeof(struct key), key_cmp, rd);
	size_t out = 1;
	for (size_t i = 1; i < rd->nkeys; i++)
		if (key_cmp(&rd->keys[i], &rd->keys[out - 1], rd) != 0)
			rd->keys[out++] = rd->keys[i];
	rd->nkeys = out;
}

enum cgread_status cgread_scan(struct cgread *rd, const struct cgread_sink *sink, char *err,
			       size_t errlen)
{
	char cursor[32] = "0";
	do {
		if (sink->should_stop && sink->should_stop(sink->arg))
			return CGREAD_STOPPED;
		const char *argv[] = {"SCAN",  cursor,	  "MATCH", RKEYS_CONGESTION_PREFIX "*",
				      "COUNT", SCAN_COUNT};
		redisReply *reply = rds_command(rd->r, 6, argv, NULL, err, errlen);
		if (!reply)
			return CGREAD_REDIS;
		rd->stats.scan_calls++;
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    reply->element[0]->len >= sizeof(cursor) ||
		    reply->element[1]->type != REDIS_REPLY_ARRAY) {
			snprintf(err, errlen, "redis: SCAN: unexpected reply shape");
			freeReplyObject(reply);
			return CGREAD_REDIS;
		}
		memcpy(cursor, reply->element[0]->str, reply->element[0]->len);
		cursor[reply->element[0]->len] = '\0';
		const redisReply *names = reply->element[1];
		for (size_t i = 0; i < names->elements; i++) {
			const redisReply *name = names->element[i];
			if (name->type != REDIS_REPLY_STRING)
				continue;
			rd->stats.keys_scanned++;
			if (!add_key(rd, sink, name->str, name->len)) {
				freeReplyObject(reply);
				snprintf(err, errlen, "out of memory listing the keys");
				return CGREAD_NOMEM;
			}
		}
		freeReplyObject(reply);
	} while (strcmp(cursor, "0") != 0);
	sort_unique(rd);
	return CGREAD_OK;
}

/* ---- GET, station by station ---- */

/* A batch in flight: keys [first, first + count). */
struct batch {
	struct cgread *rd;
	const struct cgread_sink *sink;
	size_t first;
	bool failed; /* an error reply other than WRONGTYPE */
	char error[256];
};

static void on_value(void *arg, size_t index, const redisReply *reply)
{
	struct batch *b = arg;
	struct cgread *rd = b->rd;
	struct key *k = &rd->keys[b->first + index];
	const char *stat_id = stat_of(rd, k), *chger_id = chger_of(rd, k);
	char why[160];
	switch (reply->type) {
	case REDIS_REPLY_NIL:
		k->state = KEY_VANISHED;
		rd->stats.vanished++;
		return;
	case REDIS_REPLY_STRING: {
		struct cgvalue *v = &rd->values[index];
		rd->stats.bytes += (long long)reply->len;
		enum cgvalue_reject why_not =
			cgvalue_decode(reply->str, reply->len, v, why, sizeof(why));
		if (why_not != CGVALUE_OK) {
			k->state = KEY_REJECTED;
			rd->stats.rejected++;
			reject(b->sink, why_not, stat_id, chger_id, why, reply->str, reply->len);
			return;
		}
		k->state = KEY_LOADED;
		k->last_sample = v->last_sample;
		rd->stats.chargers++;
		rd->stats.samples += cgvalue_samples_total(v);
		rd->stats.out_of_service += cgvalue_out_of_service_total(v);
		if (v->last_sample) {
			if (!rd->stats.first_sample || v->last_sample < rd->stats.first_sample)
				rd->stats.first_sample = v->last_sample;
			if (v->last_sample > rd->stats.last_sample)
				rd->stats.last_sample = v->last_sample;
		}
		return;
	}
	case REDIS_REPLY_ERROR:
		if (!strncmp(reply->str, "WRONGTYPE", 9)) {
			k->state = KEY_REJECTED;
			rd->stats.rejected++;
			reject(b->sink, CGVALUE_BAD_TYPE, stat_id, chger_id,
			       "the key holds another type than a string", "", 0);
			return;
		}
		break;
	default: break;
	}
	if (!b->failed) {
		b->failed = true;
		snprintf(b->error, sizeof(b->error), "redis: GET %s%s:%s: %.*s",
			 RKEYS_CONGESTION_PREFIX, stat_id, chger_id,
			 reply->type == REDIS_REPLY_ERROR ? (int)reply->len : 22,
			 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply type");
	}
	k->state = KEY_REJECTED;
}

/* Hand each station of keys [first, end) to the sink. */
static bool deliver(struct cgread *rd, const struct cgread_sink *sink, size_t first, size_t end)
{
	size_t i = first;
	while (i < end) {
		const char *stat_id = stat_of(rd, &rd->keys[i]);
		size_t n = 0;
		size_t j = i;
		for (; j < end && !strcmp(stat_of(rd, &rd->keys[j]), stat_id); j++) {
			if (rd->keys[j].state != KEY_LOADED)
				continue;
			rd->chargers[n].chger_id = chger_of(rd, &rd->keys[j]);
			rd->chargers[n].value = &rd->values[j - first];
			n++;
		}
		if (n && !sink->station(sink->arg, stat_id, rd->chargers, n))
			return false;
		i = j;
	}
	return true;
}

enum cgread_status cgread_read(struct cgread *rd, const struct cgread_sink *sink, char *err,
			       size_t errlen)
{
	size_t first = 0;
	while (first < rd->nkeys) {
		if (sink->should_stop && sink->should_stop(sink->arg))
			return CGREAD_STOPPED;
		/* whole stations only: the sink sees each station once */
		size_t end = first + (size_t)rd->batch_keys < rd->nkeys
				     ? first + (size_t)rd->batch_keys
				     : rd->nkeys;
		while (end < rd->nkeys &&
		       !strcmp(stat_of(rd, &rd->keys[end]), stat_of(rd, &rd->keys[end - 1])))
			end++;
		if (!grow(&rd->values, &rd->values_cap, end - first, sizeof(struct cgvalue)) ||
		    !grow(&rd->chargers, &rd->chargers_cap, end - first,
			  sizeof(struct cgvalue_charger))) {
			snprintf(err, errlen, "out of memory for a batch of %zu keys", end - first);
			return CGREAD_NOMEM;
		}
		for (size_t i = first; i < end; i++) {
			const struct key *k = &rd->keys[i];
			char name[RKEYS_KEY_MAX];
			int len = rkeys_congestion(name, sizeof(name), stat_of(rd, k),
						   chger_of(rd, k));
			const char *argv[] = {"GET", name};
			const size_t argvlen[] = {3, (size_t)len};
			if (len <= 0 || (size_t)len >= sizeof(name) ||
			    !rds_append(rd->r, 2, argv, argvlen)) {
				snprintf(err, errlen, "redis: queueing GET %s failed", name);
				return CGREAD_REDIS;
			}
		}
		struct batch b = {.rd = rd, .sink = sink, .first = first};
		struct rds_batch_result result;
		char why[512];
		enum rds_status st = rds_flush(rd->r, on_value, &b, &result, why, sizeof(why));
		if (st == RDS_IO_ERROR) {
			snprintf(err, errlen, "%s", why);
			return CGREAD_REDIS;
		}
		if (b.failed) {
			snprintf(err, errlen, "%s", b.error);
			return CGREAD_REDIS;
		}
		if (!deliver(rd, sink, first, end))
			return CGREAD_SINK;
		first = end;
		if (sink->progress)
			sink->progress(sink->arg, first);
	}
	return CGREAD_OK;
}
