#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rkeys.h"

/* ---- stations: each station's availability as Redis holds it ----
 * Counted from the entries' stored state; a station whose counts changed
 * (or whose availability field differed at a load) is pending until the
 * writer takes it: the oldest first (table_av_take), or the one whose
 * chargers it is writing (table_av_claim). A claimed station stays linked
 * in the FIFO, not pending, and is skipped when it comes up.
 * Open addressing as above; stations live in one growable array, never
 * freed; indexes are 1-based (0: none). */

struct stations;
static void stations_free(struct stations *s);

struct station {
	char id[TABLE_STAT_ID_MAX + 1];
	bool is_pending, is_linked; /* pending; in the FIFO (maybe no longer pending) */
	uint32_t total, standby, quick;
	uint32_t next_pending; /* FIFO link: index, 0 = end */
	uint32_t first_entry, last_entry; /* its chargers' chain, in order of arrival
					     (table_entry.next_in_station): index + 1 */
};

struct stations {
	struct station *list; /* owned; list[0] unused so that indexes are 1-based */
	size_t count, cap;    /* count includes list[0] */
	uint32_t *slots;      /* owned: station index, 0 = empty; nslots a power of two */
	size_t nslots;
	uint32_t head, tail; /* FIFO of the pending stations (and of claimed ones) */
	size_t pending;	     /* stations pending */
};

static uint64_t hash_station(const char *id, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)id[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static size_t probe_station(const struct stations *s, const char *id, size_t len)
{
	size_t mask = s->nslots - 1, i = (size_t)hash_station(id, len) & mask;
	while (s->slots[i]) {
		const struct station *st = &s->list[s->slots[i]];
		if (strncmp(st->id, id, len) == 0 && st->id[len] == '\0')
			break;
		i = (i + 1) & mask;
	}
	return i;
}

/* A slot array twice as large (1024 at first), empty, replacing *slots. */
static bool double_slots(uint32_t **slots, size_t *nslots)
{
	size_t n = *nslots ? *nslots * 2 : 1024;
	uint32_t *fresh = calloc(n, sizeof(*fresh));
	if (!fresh)
		return false;
	free(*slots);
	*slots = fresh;
	*nslots = n;
	return true;
}

static bool grow_station_slots(struct stations *s)
{
	if (!double_slots(&s->slots, &s->nslots))
		return false;
	for (size_t x = 1; x < s->count; x++)
		s->slots[probe_station(s, s->list[x].id, strlen(s->list[x].id))] = (uint32_t)x;
	return true;
}

static struct stations *stations_new(void)
{
	struct stations *s = calloc(1, sizeof(*s));
	if (!s || !grow_station_slots(s) || !(s->list = calloc(1024, sizeof(*s->list)))) {
		stations_free(s);
		return NULL;
	}
	s->cap = 1024;
	s->count = 1;
	return s;
}

static void stations_free(struct stations *s)
{
	if (!s)
		return;
	free(s->list);
	free(s->slots);
	free(s);
}

static uint32_t stations_intern(struct stations *s, const char *stat_id, size_t len)
{
	if (len == 0 || len > TABLE_STAT_ID_MAX)
		return 0;
	size_t slot = probe_station(s, stat_id, len);
	if (s->slots[slot])
		return s->slots[slot];
	if (s->count >= UINT32_MAX - 1)
		return 0;
	if (s->count == s->cap) {
		struct station *grown = realloc(s->list, s->cap * 2 * sizeof(*grown));
		if (!grown)
			return 0;
		s->list = grown;
		s->cap *= 2;
	}
	/* keep the load under 1/2 */
	if (s->count * 2 > s->nslots) {
		if (!grow_station_slots(s))
			return 0;
		slot = probe_station(s, stat_id, len);
	}
	uint32_t x = (uint32_t)s->count++;
	memset(&s->list[x], 0, sizeof(s->list[x]));
	memcpy(s->list[x].id, stat_id, len);
	s->slots[slot] = x;
	return x;
}

static const char *stations_id(const struct stations *s, uint32_t station)
{
	return s->list[station].id;
}

static void stations_mark(struct stations *s, uint32_t station)
{
	struct station *st = &s->list[station];
	if (st->is_pending)
		return;
	st->is_pending = true;
	s->pending++;
	if (st->is_linked)
		return;
	st->is_linked = true;
	st->next_pending = 0;
	if (s->tail)
		s->list[s->tail].next_pending = station;
	else
		s->head = station;
	s->tail = station;
}

static bool stations_claim(struct stations *s, uint32_t station)
{
	struct station *st = &s->list[station];
	if (!st->is_pending)
		return false;
	st->is_pending = false;
	s->pending--;
	return true;
}

static uint32_t stations_take(struct stations *s)
{
	while (s->head) {
		uint32_t x = s->head;
		struct station *st = &s->list[x];
		s->head = st->next_pending;
		if (!s->head)
			s->tail = 0;
		st->is_linked = false;
		if (stations_claim(s, x))
			return x;
	}
	return 0;
}

static size_t stations_pending(const struct stations *s)
{
	return s->pending;
}

static void stations_count(struct stations *s, uint32_t station, int sign, bool standby, bool quick)
{
	struct station *st = &s->list[station];
	uint32_t d = sign > 0 ? 1u : (uint32_t)-1; /* unsigned wrap adds or takes one */
	st->total += d;
	if (standby) {
		st->standby += d;
		if (quick)
			st->quick += d;
	}
}

/* The head of a station's value (rkeys.h), terminated; its length. */
static size_t stations_head(const struct stations *s, uint32_t station,
			    char out[RKEYS_LIVE_HEAD_MAX])
{
	const struct station *st = &s->list[station];
	size_t n = rkeys_live_head_put(out, st->standby, st->total, st->quick);
	out[n] = '\0';
	return n;
}

static void stations_check(struct stations *s, uint32_t station, const char *stored)
{
	char want[RKEYS_LIVE_HEAD_MAX];
	stations_head(s, station, want);
	bool holds_any = s->list[station].total > 0;
	if (!stored ? holds_any : !holds_any || strcmp(want, stored) != 0)
		stations_mark(s, station);
}

static void stations_reset(struct stations *s)
{
	for (size_t x = 1; x < s->count; x++) {
		struct station *st = &s->list[x];
		st->total = st->standby = st->quick = 0;
		st->is_pending = st->is_linked = false;
		st->next_pending = 0;
	}
	s->head = s->tail = 0;
	s->pending = 0;
}

struct table {
	struct table_entry *entries; /* owned; count used, cap allocated */
	size_t count, cap;
	uint32_t *slots; /* owned: entry index + 1, 0 = empty; nslots a power of two */
	size_t nslots;
	uint32_t dirty_head, dirty_tail; /* FIFO of dirty entries: index + 1, 0 = none */
	size_t dirty;
	int64_t newest;
	uint16_t stamp; /* given to every put; a sweep takes a new one */
	struct stations *stations; /* owned */
};

/* FNV-1a over "statId\0chgerId". */
static uint64_t hash_ids(const char *stat_id, size_t slen, const char *chger_id, size_t clen)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < slen; i++)
		h = (h ^ (unsigned char)stat_id[i]) * 0x100000001b3ULL;
	h = (h ^ 0xffu) * 0x100000001b3ULL;
	for (size_t i = 0; i < clen; i++)
		h = (h ^ (unsigned char)chger_id[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static bool same_ids(const struct table_entry *e, const char *stat_id, size_t slen,
		     const char *chger_id, size_t clen)
{
	return strncmp(e->stat_id, stat_id, slen) == 0 && e->stat_id[slen] == '\0' &&
	       strncmp(e->chger_id, chger_id, clen) == 0 && e->chger_id[clen] == '\0';
}

/* The slot holding the charger, or the empty slot where it would go. */
static size_t probe(const struct table *t, const char *stat_id, size_t slen, const char *chger_id,
		    size_t clen)
{
	size_t mask = t->nslots - 1;
	size_t i = (size_t)hash_ids(stat_id, slen, chger_id, clen) & mask;
	while (t->slots[i] &&
	       !same_ids(&t->entries[t->slots[i] - 1], stat_id, slen, chger_id, clen))
		i = (i + 1) & mask;
	return i;
}

static bool grow_slots(struct table *t)
{
	if (!double_slots(&t->slots, &t->nslots))
		return false;
	for (size_t e = 0; e < t->count; e++) {
		const struct table_entry *en = &t->entries[e];
		size_t i = probe(t, en->stat_id, strlen(en->stat_id), en->chger_id,
				 strlen(en->chger_id));
		t->slots[i] = (uint32_t)(e + 1);
	}
	return true;
}

struct table *table_new(void)
{
	struct table *t = calloc(1, sizeof(*t));
	if (!t || !grow_slots(t) || !(t->stations = stations_new())) {
		table_free(t);
		return NULL;
	}
	return t;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	free(t->entries);
	free(t->slots);
	stations_free(t->stations);
	free(t);
}

static void push_dirty(struct table *t, size_t index)
{
	struct table_entry *e = &t->entries[index];
	e->flags |= TABLE_DIRTY;
	e->next_dirty = 0;
	if (t->dirty_tail)
		t->entries[t->dirty_tail - 1].next_dirty = (uint32_t)(index + 1);
	else
		t->dirty_head = (uint32_t)(index + 1);
	t->dirty_tail = (uint32_t)(index + 1);
	t->dirty++;
}

/* Mark an entry changed: a change from a poll stays a change for the stream
 * even when a sweep touches the entry again before it is written. */
static void dirty(struct table *t, size_t index, bool seed)
{
	struct table_entry *e = &t->entries[index];
	if (e->flags & TABLE_DIRTY) {
		if (!seed)
			e->flags &= (uint8_t)~TABLE_SEED;
		return;
	}
	e->flags = (uint8_t)((e->flags & ~TABLE_SEED) | (seed ? TABLE_SEED : 0));
	push_dirty(t, index);
}

/* A new entry, zeroed but for its ids and station, in its slot: its index,
 * or -1 (no memory). */
static long add_entry(struct table *t, const char *stat_id, size_t slen, const char *chger_id,
		      size_t clen)
{
	if (t->count >= UINT32_MAX - 1)
		return -1;
	uint32_t station = stations_intern(t->stations, stat_id, slen);
	if (!station)
		return -1;
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		struct table_entry *grown = realloc(t->entries, cap * sizeof(*grown));
		if (!grown)
			return -1;
		t->entries = grown;
		t->cap = cap;
	}
	/* keep the load under 1/2: probes stay short at 500k chargers */
	if ((t->count + 1) * 2 > t->nslots && !grow_slots(t))
		return -1;
	size_t slot = probe(t, stat_id, slen, chger_id, clen);
	size_t index = t->count++;
	struct table_entry *e = &t->entries[index];
	memset(e, 0, sizeof(*e));
	memcpy(e->stat_id, stat_id, slen);
	memcpy(e->chger_id, chger_id, clen);
	e->station = station;
	struct station *st = &t->stations->list[station];
	if (st->last_entry)
		t->entries[st->last_entry - 1].next_in_station = (uint32_t)(index + 1);
	else
		st->first_entry = (uint32_t)(index + 1);
	st->last_entry = (uint32_t)(index + 1);
	t->slots[slot] = (uint32_t)(index + 1);
	return (long)index;
}

enum table_put table_put(struct table *t, const struct table_item *item)
{
	if (item->stat_id_len == 0 || item->stat_id_len > TABLE_STAT_ID_MAX ||
	    item->chger_id_len == 0 || item->chger_id_len > TABLE_CHGER_ID_MAX)
		return TABLE_BAD_ID;
	if (item->updated > t->newest)
		t->newest = item->updated;
	size_t slot =
		probe(t, item->stat_id, item->stat_id_len, item->chger_id, item->chger_id_len);
	uint8_t quick_bits =
		item->quick_known ? (uint8_t)(TABLE_QUICK_KNOWN | (item->quick ? TABLE_QUICK : 0))
				  : 0;
	if (t->slots[slot]) {
		size_t index = t->slots[slot] - 1;
		struct table_entry *e = &t->entries[index];
		bool changed = false;
		e->seen = t->stamp;
		if (e->flags & TABLE_GONE) {
			/* listed again after its removal: new to Redis */
			e->flags &= (uint8_t)~TABLE_GONE;
			table_unstore(t, (long)index, false);
			e->updated = item->updated;
			e->stat = (uint8_t)item->stat;
			changed = true;
		}
		if (item->updated > e->updated) {
			e->updated = item->updated;
			e->stat = (uint8_t)item->stat;
			changed = true;
		}
		if (item->quick_known &&
		    (e->flags & (TABLE_QUICK_KNOWN | TABLE_QUICK)) != quick_bits) {
			e->flags = (uint8_t)((e->flags & ~(TABLE_QUICK_KNOWN | TABLE_QUICK)) |
					     quick_bits);
			changed = true;
		}
		if (!changed)
			return TABLE_KEPT;
		dirty(t, index, item->from_sweep);
		return TABLE_NEWER;
	}
	long index = add_entry(t, item->stat_id, item->stat_id_len, item->chger_id,
			       item->chger_id_len);
	if (index < 0)
		return TABLE_NO_MEMORY;
	struct table_entry *e = &t->entries[index];
	e->updated = item->updated;
	e->stat = (uint8_t)item->stat;
	e->flags = quick_bits;
	e->seen = t->stamp;
	dirty(t, (size_t)index, item->from_sweep);
	return TABLE_NEWER;
}

const struct table_entry *table_find(const struct table *t, const char *stat_id,
				     const char *chger_id)
{
	size_t slen = strlen(stat_id), clen = strlen(chger_id);
	if (slen > TABLE_STAT_ID_MAX || clen > TABLE_CHGER_ID_MAX)
		return NULL;
	size_t slot = probe(t, stat_id, slen, chger_id, clen);
	return t->slots[slot] ? &t->entries[t->slots[slot] - 1] : NULL;
}

uint16_t table_new_stamp(struct table *t)
{
	return ++t->stamp;
}

size_t table_forget_unlisted(struct table *t, uint16_t stamp)
{
	size_t forgotten = 0;
	for (size_t i = 0; i < t->count; i++) {
		struct table_entry *e = &t->entries[i];
		/* stamped at or after the sweep's stamp (a later sweep may have
		 * begun meanwhile; stamps wrap): listed since */
		if ((e->flags & TABLE_GONE) || (uint16_t)(e->seen - stamp) < 0x8000)
			continue;
		/* a removal, not a seed: the stream hears of it */
		e->flags = (uint8_t)((e->flags | TABLE_GONE) & ~TABLE_SEED);
		if (!(e->flags & TABLE_DIRTY))
			push_dirty(t, i);
		forgotten++;
	}
	return forgotten;
}

long table_take_dirty(struct table *t)
{
	if (!t->dirty_head)
		return -1;
	size_t index = t->dirty_head - 1;
	struct table_entry *e = &t->entries[index];
	t->dirty_head = e->next_dirty;
	if (!t->dirty_head)
		t->dirty_tail = 0;
	e->next_dirty = 0;
	e->flags &= (uint8_t)~TABLE_DIRTY;
	t->dirty--;
	return (long)index;
}

void table_requeue(struct table *t, long index)
{
	if (index < 0 || (size_t)index >= t->count || (t->entries[index].flags & TABLE_DIRTY))
		return;
	push_dirty(t, (size_t)index);
}

void table_mark_all_dirty(struct table *t)
{
	for (size_t i = 0; i < t->count; i++)
		if (!(t->entries[i].flags & (TABLE_DIRTY | TABLE_GONE))) {
			t->entries[i].flags |= TABLE_SEED;
			push_dirty(t, i);
		}
}

const struct table_entry *table_at(const struct table *t, long index)
{
	return index >= 0 && (size_t)index < t->count ? &t->entries[index] : NULL;
}

size_t table_count(const struct table *t)
{
	return t->count;
}

size_t table_dirty_count(const struct table *t)
{
	return t->dirty;
}

int64_t table_newest(const struct table *t)
{
	return t->newest;
}

/* ---- what Redis holds ---- */

/* A stored charger's share of its station's availability: 0 when not
 * stored, else 1 + 2 standing by + 4 quick and standing by. */
static int share(const struct table_entry *e)
{
	if (!(e->stored_flags & TABLE_STORED))
		return 0;
	bool standby = e->stored_stat == MODEL_STATUS_STANDBY;
	return 1 + (standby ? 2 : 0) + (standby && (e->stored_flags & TABLE_STORED_QUICK) ? 4 : 0);
}

static void count_share(struct table *t, const struct table_entry *e, int share_of, int sign)
{
	if (share_of)
		stations_count(t->stations, e->station, sign, share_of & 2, share_of & 4);
}

/* Set an entry's stored state, keeping its station's counts; the station
 * becomes pending (its value is to be written) when rewrite. */
static void set_stored(struct table *t, struct table_entry *e, uint8_t stored_flags, uint8_t stat,
		       int64_t updated, bool rewrite)
{
	int before = share(e);
	e->stored_flags = stored_flags;
	e->stored_stat = stat;
	e->stored_updated = updated;
	int after = share(e);
	if (before != after) {
		count_share(t, e, before, -1);
		count_share(t, e, after, 1);
	}
	if (rewrite)
		stations_mark(t->stations, e->station);
}

uint32_t table_av_take(struct table *t)
{
	return stations_take(t->stations);
}

bool table_av_claim(struct table *t, uint32_t station)
{
	return stations_claim(t->stations, station);
}

size_t table_av_pending(const struct table *t)
{
	return stations_pending(t->stations);
}

size_t table_station_format(const struct table *t, uint32_t station, const char **stat_id,
			    struct buf *out)
{
	*stat_id = stations_id(t->stations, station);
	const struct station *st = &t->stations->list[station];
	buf_reset(out);
	if (st->total == 0)
		return 0;
	char head[RKEYS_LIVE_HEAD_MAX];
	buf_append(out, head, stations_head(t->stations, station, head));
	size_t chargers = 0;
	for (uint32_t x = st->first_entry; x; x = t->entries[x - 1].next_in_station) {
		const struct table_entry *e = &t->entries[x - 1];
		if (!(e->stored_flags & TABLE_STORED))
			continue;
		char charger[RKEYS_LIVE_CHARGER_MAX];
		buf_append(out, charger,
			   rkeys_live_charger_put(charger, e->chger_id, strlen(e->chger_id),
						  e->stored_stat, e->stored_updated,
						  e->stored_flags & TABLE_STORED_QUICK));
		chargers++;
	}
	return buf_ok(out) ? chargers : 0;
}

void table_av_check(struct table *t, uint32_t station, const char *stored)
{
	stations_check(t->stations, station, stored);
}

void table_stored_reset(struct table *t)
{
	for (size_t i = 0; i < t->count; i++)
		t->entries[i].stored_flags = 0;
	stations_reset(t->stations);
}

uint32_t table_learn(struct table *t, const char *stat_id, size_t slen, const char *chger_id,
		     size_t clen, int stat, int64_t updated, bool stored_quick)
{
	if (slen == 0 || slen > TABLE_STAT_ID_MAX || clen == 0 || clen > TABLE_CHGER_ID_MAX ||
	    stat < 0 || stat > UINT8_MAX)
		return 0;
	size_t slot = probe(t, stat_id, slen, chger_id, clen);
	long index;
	if (t->slots[slot]) {
		index = (long)t->slots[slot] - 1;
	} else {
		if ((index = add_entry(t, stat_id, slen, chger_id, clen)) < 0)
			return 0;
		/* not listed by a sweep in progress: prune.c judges it by the sweep */
		t->entries[index].seen = (uint16_t)(t->stamp - 1);
	}
	struct table_entry *e = &t->entries[index];
	/* gone and still queued: a removal the writer has yet to make */
	bool is_removing = (e->flags & TABLE_GONE) && (e->flags & TABLE_DIRTY);
	if (!is_removing &&
	    ((e->flags & TABLE_GONE) || updated > e->updated || !(e->updated || e->stat))) {
		e->flags &= (uint8_t)~TABLE_GONE;
		e->updated = updated;
		e->stat = (uint8_t)stat;
	}
	if (updated > t->newest)
		t->newest = updated;
	set_stored(t, e, (uint8_t)(TABLE_STORED | (stored_quick ? TABLE_STORED_QUICK : 0)),
		   (uint8_t)stat, updated, false);
	return e->station;
}

void table_store(struct table *t, long index, bool status, bool stored_quick)
{
	struct table_entry *e = &t->entries[index];
	uint8_t flags = (uint8_t)((status ? TABLE_STORED : e->stored_flags & TABLE_STORED) |
				  (stored_quick ? TABLE_STORED_QUICK : 0));
	set_stored(t, e, flags, status ? e->stat : e->stored_stat,
		   status ? e->updated : e->stored_updated, true);
}

void table_unstore(struct table *t, long index, bool rewrite)
{
	struct table_entry *e = &t->entries[index];
	set_stored(t, e, 0, 0, 0, rewrite);
}
