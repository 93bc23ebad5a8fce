/* realtimed's pure modules: the charger table (newer-only updates, the
 * dirty FIFO, seeds, growth), the Redis reply bounds against hostile
 * replies, and the clock setting.
 *
 * Unit tests link libcommon only; realtimed's modules are compiled in here
 * from their sources (each is self-contained). */
#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../realtimed/clock.c"
#include "../../realtimed/rbound.c"
#include "../../realtimed/table.c"
#include "kst.h"
#include "rkeys.h"

/* ---- table ---- */

static struct table_item item(const char *stat_id, const char *chger_id, int stat, int64_t updated)
{
	return (struct table_item){
		.stat_id = stat_id,
		.stat_id_len = strlen(stat_id),
		.chger_id = chger_id,
		.chger_id_len = strlen(chger_id),
		.stat = stat,
		.updated = updated,
	};
}

static enum table_put put(struct table *t, struct table_item it)
{
	return table_put(t, &it);
}

START_TEST(table_keeps_only_newer)
{
	struct table *t = table_new();
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(put(t, item("ME000001", "01", 2, 1000)), TABLE_NEWER);
	ck_assert_int_eq(put(t, item("ME000001", "01", 3, 999)), TABLE_KEPT);  /* older */
	ck_assert_int_eq(put(t, item("ME000001", "01", 3, 1000)), TABLE_KEPT); /* same time */
	const struct table_entry *e = table_find(t, "ME000001", "01");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->stat, 2);
	ck_assert_int_eq(put(t, item("ME000001", "01", 3, 1001)), TABLE_NEWER);
	ck_assert_int_eq(e->stat, 3);
	ck_assert_int_eq(e->updated, 1001);
	ck_assert_int_eq(table_count(t), 1);
	ck_assert_int_eq(table_newest(t), 1001);
	/* statId and chgerId are one key together, not concatenated text */
	ck_assert_int_eq(put(t, item("ME00000", "101", 2, 5)), TABLE_NEWER);
	ck_assert_int_eq(table_count(t), 2);
	ck_assert_ptr_null(table_find(t, "ME000001", "02"));
	table_free(t);
}
END_TEST

START_TEST(table_refuses_bad_ids)
{
	struct table *t = table_new();
	ck_assert_int_eq(put(t, item("", "01", 2, 1)), TABLE_BAD_ID);
	ck_assert_int_eq(put(t, item("ME000001", "", 2, 1)), TABLE_BAD_ID);
	ck_assert_int_eq(put(t, item("ABCDEFGHIJKLMNOPQRSTU", "01", 2, 1)), TABLE_BAD_ID); /* 21 */
	ck_assert_int_eq(put(t, item("ABCDEFGHIJKLMNOPQRST", "0123456789", 2, 1)), TABLE_NEWER);
	ck_assert_int_eq(put(t, item("ME000001", "01234567890", 2, 1)), TABLE_BAD_ID);
	ck_assert_int_eq(table_count(t), 1);
	table_free(t);
}
END_TEST

START_TEST(table_dirty_fifo)
{
	struct table *t = table_new();
	ck_assert_int_eq(table_take_dirty(t), -1);
	put(t, item("A0000001", "01", 2, 10));
	put(t, item("A0000001", "02", 2, 10));
	put(t, item("A0000002", "01", 2, 10));
	ck_assert_int_eq(table_dirty_count(t), 3);
	/* an update of a queued entry keeps its place */
	put(t, item("A0000001", "01", 3, 11));
	ck_assert_int_eq(table_dirty_count(t), 3);
	long a = table_take_dirty(t), b = table_take_dirty(t);
	ck_assert_str_eq(table_at(t, a)->chger_id, "01");
	ck_assert_int_eq(table_at(t, a)->stat, 3);
	ck_assert_str_eq(table_at(t, b)->chger_id, "02");
	ck_assert_int_eq(table_dirty_count(t), 1);
	/* a failed write queues again, at the end, once */
	table_requeue(t, a);
	table_requeue(t, a);
	ck_assert_int_eq(table_dirty_count(t), 2);
	ck_assert_str_eq(table_at(t, table_take_dirty(t))->stat_id, "A0000002");
	ck_assert_int_eq(table_take_dirty(t), a);
	ck_assert_int_eq(table_take_dirty(t), -1);
	/* taken (in flight) and updated again: queued again */
	put(t, item("A0000001", "02", 5, 20));
	ck_assert_int_eq(table_take_dirty(t), b);
	ck_assert_int_eq(table_dirty_count(t), 0);
	table_free(t);
}
END_TEST

START_TEST(table_seed_and_quick_flags)
{
	struct table *t = table_new();
	struct table_item sw = item("ST000001", "01", 2, 100);
	sw.from_sweep = true;
	sw.quick_known = true;
	sw.quick = true;
	ck_assert_int_eq(table_put(t, &sw), TABLE_NEWER);
	long i = table_take_dirty(t);
	const struct table_entry *e = table_at(t, i);
	ck_assert_int_eq(e->flags & (TABLE_SEED | TABLE_QUICK_KNOWN | TABLE_QUICK),
			 TABLE_SEED | TABLE_QUICK_KNOWN | TABLE_QUICK);
	/* same status, quickness unchanged: nothing to write */
	ck_assert_int_eq(table_put(t, &sw), TABLE_KEPT);
	/* only the quickness changed (a sweep saw a new output): written */
	sw.quick = false;
	ck_assert_int_eq(table_put(t, &sw), TABLE_NEWER);
	ck_assert_int_eq(e->flags & TABLE_QUICK, 0);
	table_take_dirty(t);
	/* a poll item knows no quickness and keeps what the sweep said */
	struct table_item poll = item("ST000001", "01", 3, 101);
	ck_assert_int_eq(table_put(t, &poll), TABLE_NEWER);
	ck_assert_int_eq(e->flags & (TABLE_SEED | TABLE_QUICK_KNOWN), TABLE_QUICK_KNOWN);
	/* a sweep touching a queued poll change keeps it a change, not a seed */
	sw.updated = 102;
	ck_assert_int_eq(table_put(t, &sw), TABLE_NEWER);
	ck_assert_int_eq(e->flags & TABLE_SEED, 0);
	table_take_dirty(t);
	/* re-apply: everything queued as seeds */
	table_mark_all_dirty(t);
	ck_assert_int_eq(table_dirty_count(t), 1);
	ck_assert_int_ne(e->flags & TABLE_SEED, 0);
	table_free(t);
}
END_TEST

/* The stations' values: the availability counted from what the writer
 * stores, then each stored charger; pending once per store, taken oldest
 * first or claimed by the writer writing the station's chargers (then
 * skipped by take). */
START_TEST(table_availability_take_and_claim)
{
	struct table *t = table_new();
	const char *ids[][2] = {{"ST000001", "01"}, {"ST000001", "02"}, {"ST000002", "01"},
				{"ST000003", "01"}};
	long index[4];
	for (int k = 0; k < 4; k++) {
		struct table_item it = item(ids[k][0], ids[k][1], 2, 100);
		it.quick_known = true;
		it.quick = k == 1;
		ck_assert_int_eq(table_put(t, &it), TABLE_NEWER);
		index[k] = table_take_dirty(t);
		table_store(t, index[k], true, it.quick);
	}
	ck_assert_int_eq(table_av_pending(t), 3);
	uint32_t st1 = table_at(t, index[0])->station, st2 = table_at(t, index[2])->station,
		 st3 = table_at(t, index[3])->station;
	struct buf value;
	buf_init(&value);
	const char *sid;
	ck_assert_uint_eq(table_station_format(t, st1, &sid, &value), 2);
	ck_assert_str_eq(sid, "ST000001");
	ck_assert_str_eq(buf_cstr(&value), "2:2:1 01=2:100 02=2:100:q");
	/* the writer claims station 2 (it writes its chargers): take skips it */
	ck_assert(table_av_claim(t, st2));
	ck_assert(!table_av_claim(t, st2));
	ck_assert_int_eq(table_av_pending(t), 2);
	ck_assert_uint_eq(table_av_take(t), st1);
	/* station 2 changes again while still linked: pending once, in order */
	table_store(t, index[2], true, true); /* now quick: 1:1:1 */
	ck_assert_int_eq(table_av_pending(t), 2);
	ck_assert_uint_eq(table_av_take(t), st2);
	ck_assert_uint_eq(table_av_take(t), st3);
	ck_assert_uint_eq(table_av_take(t), 0);
	ck_assert_int_eq(table_av_pending(t), 0);
	ck_assert_uint_eq(table_station_format(t, st2, &sid, &value), 1);
	ck_assert_str_eq(buf_cstr(&value), "1:1:1 01=2:100:q");
	/* a charger no longer stored leaves the value; none left: no value */
	table_unstore(t, index[2], true);
	ck_assert_int_eq(table_av_pending(t), 1);
	ck_assert_uint_eq(table_av_take(t), st2);
	ck_assert_uint_eq(table_station_format(t, st2, &sid, &value), 0);
	ck_assert_uint_eq(value.len, 0);
	table_unstore(t, index[1], true);
	ck_assert_uint_eq(table_av_take(t), st1);
	ck_assert_uint_eq(table_station_format(t, st1, &sid, &value), 1);
	ck_assert_str_eq(buf_cstr(&value), "1:1:0 01=2:100");
	buf_free(&value);
	/* claimed then changed: pending again, taken once */
	table_store(t, index[3], true, true);
	ck_assert(table_av_claim(t, st3));
	table_store(t, index[3], true, false);
	ck_assert_int_eq(table_av_pending(t), 1);
	ck_assert_uint_eq(table_av_take(t), st3);
	ck_assert_uint_eq(table_av_take(t), 0);
	table_free(t);
}
END_TEST

/* A station's value (rkeys.h layout 3): written and read back; a charger's
 * part as snprintf would write it; anything malformed refused. */
START_TEST(rkeys_status_values)
{
	char v[RKEYS_LIVE_CHARGER_MAX + RKEYS_LIVE_HEAD_MAX];
	ck_assert_int_eq(rkeys_status_format(v, sizeof(v), 2, 1732500000, true), 14);
	ck_assert_str_eq(v, "2:1732500000:q");
	size_t n = rkeys_live_head_put(v, 1, 12, 0);
	n += rkeys_live_charger_put(v + n, "01", 2, 2, 1732500000, true);
	n += rkeys_live_charger_put(v + n, "A7", 2, 9, 7, false);
	ck_assert_str_eq((v[n] = '\0', v), "1:12:0 01=2:1732500000:q A7=9:7");
	struct rkeys_avail av;
	struct rkeys_charger c;
	size_t at;
	ck_assert(rkeys_live_head(v, n, &av, &at));
	ck_assert(av.standby == 1 && av.total == 12 && av.quick_standby == 0 && at == 6);
	ck_assert_int_eq(rkeys_live_next(v, n, &at, &c), 1);
	ck_assert(c.id_len == 2 && memcmp(c.id, "01", 2) == 0 && c.stat == 2 &&
		  c.updated == 1732500000 && c.quick);
	ck_assert_int_eq(rkeys_live_next(v, n, &at, &c), 1);
	ck_assert(c.id_len == 2 && memcmp(c.id, "A7", 2) == 0 && c.stat == 9 && c.updated == 7 &&
		  !c.quick);
	ck_assert_int_eq(rkeys_live_next(v, n, &at, &c), 0);
	ck_assert(rkeys_live_find(v, n, "A7", &c) && c.stat == 9);
	ck_assert(!rkeys_live_find(v, n, "A", &c));
	ck_assert(!rkeys_live_find(v, n, "02", &c));
	/* a station with no charger is no value; the head alone still parses */
	ck_assert(rkeys_live_head("0:0:0", 5, &av, &at) && at == 5);
	ck_assert_int_eq(rkeys_live_next("0:0:0", 5, &at, &c), 0);
	const char *bad_head[] = {"", "1", "1:2", "1:2:", ":1:2", "1:2:3x", "1:2:3:", "a:b:c",
				  "99999999999:1:1"};
	for (size_t k = 0; k < sizeof(bad_head) / sizeof(bad_head[0]); k++)
		ck_assert_msg(!rkeys_live_head(bad_head[k], strlen(bad_head[k]), &av, &at), "%s",
			      bad_head[k]);
	const char *bad[] = {"0:1:0 ", "0:1:0 01", "0:1:0 01=", "0:1:0 01=2", "0:1:0 01=2:",
			     "0:1:0 =2:5", "0:1:0 01=2:5:", "0:1:0 01=2:5:x", "0:1:0 01=2:5:qq",
			     "0:1:0 01=2:5:q:q", "0:1:0 01=2:5  02=2:5", "0:1:0 01=100:5",
			     "0:1:0 01=2:5x"};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		size_t len = strlen(bad[k]);
		ck_assert(rkeys_live_head(bad[k], len, &av, &at));
		int next;
		while ((next = rkeys_live_next(bad[k], len, &at, &c)) == 1)
			;
		ck_assert_msg(next == -1, "%s", bad[k]);
	}
	/* written by hand, as snprintf would: the whole length, a cut copy */
	ck_assert_int_eq(rkeys_status_format(v, sizeof(v), 0, 0, false), 3);
	ck_assert_str_eq(v, "0:0");
	ck_assert_int_eq(rkeys_status_format(v, sizeof(v), 7, INT64_MAX, true), 23);
	ck_assert_str_eq(v, "7:9223372036854775807:q");
	ck_assert_int_eq(rkeys_status_format(v, 5, 2, 1732500000, true), 14);
	ck_assert_str_eq(v, "2:17");
	/* before 1970: still read back */
	n = rkeys_live_head_put(v, 0, 1, 0);
	n += rkeys_live_charger_put(v + n, "01", 2, 2, -5, false);
	ck_assert(rkeys_live_find(v, n, "01", &c) && c.updated == -5);
	char key[RKEYS_KEY_MAX];
	ck_assert_int_eq(rkeys_station(key, sizeof(key), "ME000001"), 14);
	ck_assert_str_eq(key, RKEYS_STATION_PREFIX "ME000001");
	ck_assert_int_eq(rkeys_station(key, 9, "ME000001"), 14);
	ck_assert_str_eq(key, "ev:st:ME");
	ck_assert_int_eq(rkeys_station(key, 4, "ME000001"), 14);
	ck_assert_str_eq(key, "ev:");
	char digits[20];
	ck_assert_uint_eq(dec_uint(digits, UINT64_MAX), 20);
	ck_assert(memcmp(digits, "18446744073709551615", 20) == 0);
	ck_assert_uint_eq(dec_uint(digits, 0), 1);
	ck_assert_int_eq(digits[0], '0');
}
END_TEST

START_TEST(table_stamps_and_gone)
{
	struct table *t = table_new();
	ck_assert_int_eq(put(t, item("ME000001", "01", 2, 1000)), TABLE_NEWER);
	ck_assert_int_eq(put(t, item("ME000001", "02", 2, 1000)), TABLE_NEWER);
	while (table_take_dirty(t) >= 0) {
	}
	uint16_t sweep = table_new_stamp(t);
	/* a put that changes nothing still says "listed" */
	ck_assert_int_eq(put(t, item("ME000001", "01", 2, 1000)), TABLE_KEPT);
	ck_assert_int_eq(table_find(t, "ME000001", "01")->seen, sweep);
	ck_assert_int_ne(table_find(t, "ME000001", "02")->seen, sweep);
	/* not listed by the sweep: gone, and queued (as a change) for the writer */
	ck_assert_uint_eq(table_forget_unlisted(t, sweep), 1);
	ck_assert_uint_eq(table_forget_unlisted(t, sweep), 0);
	ck_assert_int_eq(table_dirty_count(t), 1);
	const struct table_entry *gone = table_at(t, table_take_dirty(t));
	ck_assert_str_eq(gone->chger_id, "02");
	ck_assert(gone->flags & TABLE_GONE);
	ck_assert(!(gone->flags & TABLE_SEED));
	/* a re-apply skips it; listed again, even older, it is new */
	table_mark_all_dirty(t);
	ck_assert_int_eq(table_dirty_count(t), 1);
	ck_assert_str_eq(table_at(t, table_take_dirty(t))->chger_id, "01");
	ck_assert_int_eq(put(t, item("ME000001", "02", 4, 900)), TABLE_NEWER);
	const struct table_entry *e = table_find(t, "ME000001", "02");
	ck_assert(!(e->flags & TABLE_GONE));
	ck_assert_int_eq(e->stat, 4);
	ck_assert_int_eq(e->updated, 900);
	ck_assert_int_eq(table_dirty_count(t), 1);
	table_free(t);
}
END_TEST

/* A removal queued but not yet written (its block failed: the writer loads
 * what Redis holds again) stays a removal: the load finds the charger still
 * in Redis, as stored, and the writer then removes it. Once written, a
 * charger Redis holds again is adopted. */
START_TEST(table_removal_survives_a_load)
{
	struct table *t = table_new();
	ck_assert_int_eq(put(t, item("ME000001", "01", 2, 1000)), TABLE_NEWER);
	long index = table_take_dirty(t);
	table_store(t, index, true, false);
	uint16_t sweep = table_new_stamp(t);
	ck_assert_uint_eq(table_forget_unlisted(t, sweep), 1);
	table_requeue(t, table_take_dirty(t)); /* taken, the block failed */
	table_stored_reset(t);
	const struct table_entry *e = table_at(t, index);
	ck_assert_uint_eq(table_learn(t, "ME000001", 8, "01", 2, 2, 1000, false), e->station);
	ck_assert(e->flags & TABLE_GONE);
	ck_assert(e->flags & TABLE_DIRTY);
	ck_assert(e->stored_flags & TABLE_STORED);
	/* written: Redis no longer holds it; a later load that finds it again
	 * (another writer put it back) adopts it */
	ck_assert_int_eq(table_take_dirty(t), index);
	table_unstore(t, index, true);
	table_stored_reset(t);
	ck_assert(table_learn(t, "ME000001", 8, "01", 2, 3, 1100, false));
	ck_assert(!(e->flags & TABLE_GONE));
	ck_assert_int_eq(e->stat, 3);
	table_free(t);
}
END_TEST

START_TEST(table_grows)
{
	struct table *t = table_new();
	char sid[16], cid[8];
	for (int n = 0; n < 120000; n++) {
		snprintf(sid, sizeof(sid), "KP%06d", n / 3);
		snprintf(cid, sizeof(cid), "%02d", n % 3 + 1);
		ck_assert_int_eq(put(t, item(sid, cid, 2, n)), TABLE_NEWER);
	}
	ck_assert_int_eq(table_count(t), 120000);
	ck_assert_int_eq(table_dirty_count(t), 120000);
	for (int n = 0; n < 120000; n += 7) {
		snprintf(sid, sizeof(sid), "KP%06d", n / 3);
		snprintf(cid, sizeof(cid), "%02d", n % 3 + 1);
		const struct table_entry *e = table_find(t, sid, cid);
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(e->updated, n);
	}
	/* FIFO order survives growth */
	for (int n = 0; n < 120000; n++)
		ck_assert_int_eq(table_at(t, table_take_dirty(t))->updated, n);
	table_free(t);
}
END_TEST

/* ---- reply bounds ---- */

static int feed_and_read(redisReader *r, const char *data, size_t len, void **reply)
{
	ck_assert_int_eq(redisReaderFeed(r, data, len), REDIS_OK);
	return redisReaderGetReply(r, reply);
}

START_TEST(rbound_refuses_huge_array)
{
	redisReader *r = redisReaderCreate();
	struct rbound b;
	rbound_init(&b);
	ck_assert(rbound_install(r, &b));
	void *reply = NULL;
	/* 2^31-1 elements: hiredis alone would calloc 16 GiB here */
	static const char hostile[] = "*2147483647\r\n";
	ck_assert_int_eq(feed_and_read(r, hostile, sizeof(hostile) - 1, &reply), REDIS_ERR);
	ck_assert_ptr_null(reply);
	ck_assert_ptr_nonnull(strstr(b.why, "2147483647 elements"));
	redisReaderFree(r);
}
END_TEST

START_TEST(rbound_refuses_nested_total)
{
	redisReader *r = redisReaderCreate();
	struct rbound b;
	rbound_init(&b);
	b.max_elements = 10;
	b.max_total_elements = 25;
	ck_assert(rbound_install(r, &b));
	void *reply = NULL;
	/* three arrays of 10 under one of 3: each within 10, 33 in all */
	char text[512] = "*3\r\n";
	for (int a = 0; a < 3; a++) {
		strcat(text, "*10\r\n");
		for (int i = 0; i < 10; i++)
			strcat(text, ":1\r\n");
	}
	ck_assert_int_eq(feed_and_read(r, text, strlen(text), &reply), REDIS_ERR);
	ck_assert_ptr_nonnull(strstr(b.why, "nested"));
	redisReaderFree(r);
}
END_TEST

START_TEST(rbound_refuses_long_bulk)
{
	redisReader *r = redisReaderCreate();
	struct rbound b;
	rbound_init(&b);
	b.max_bulk = 100;
	b.max_pending = 1000;
	ck_assert(rbound_install(r, &b));
	void *reply = NULL;
	/* announced long and still arriving: refused by the pending check
	 * before it is all buffered */
	static const char head[] = "$2000000000\r\n";
	ck_assert_int_eq(feed_and_read(r, head, sizeof(head) - 1, &reply), REDIS_OK);
	ck_assert_ptr_null(reply);
	ck_assert(rbound_pending_ok(r, &b));
	char junk[2048];
	memset(junk, 'x', sizeof(junk));
	ck_assert_int_eq(feed_and_read(r, junk, sizeof(junk), &reply), REDIS_OK);
	ck_assert(!rbound_pending_ok(r, &b));
	ck_assert_ptr_nonnull(strstr(b.why, "buffered"));
	redisReaderFree(r);

	/* complete but over max_bulk: refused by the string function */
	r = redisReaderCreate();
	rbound_init(&b);
	b.max_bulk = 100;
	ck_assert(rbound_install(r, &b));
	char text[300];
	int n = snprintf(text, sizeof(text), "$200\r\n%0200d\r\n", 0);
	ck_assert_int_eq(feed_and_read(r, text, (size_t)n, &reply), REDIS_ERR);
	ck_assert_ptr_nonnull(strstr(b.why, "200 bytes"));
	redisReaderFree(r);
}
END_TEST

START_TEST(rbound_passes_ordinary_replies)
{
	redisReader *r = redisReaderCreate();
	struct rbound b;
	rbound_init(&b);
	ck_assert(rbound_install(r, &b));
	static const char text[] =
		"*3\r\n$1\r\n0\r\n*2\r\n$11\r\nev:st:ME001\r\n$-1\r\n:42\r\n+OK\r\n";
	void *reply = NULL;
	ck_assert_int_eq(feed_and_read(r, text, sizeof(text) - 1, &reply), REDIS_OK);
	redisReply *x = reply;
	ck_assert_int_eq(x->type, REDIS_REPLY_ARRAY);
	ck_assert_int_eq(x->elements, 3);
	ck_assert_str_eq(x->element[1]->element[0]->str, "ev:st:ME001");
	ck_assert_int_eq(x->element[1]->element[1]->type, REDIS_REPLY_NIL);
	ck_assert_int_eq(x->element[2]->integer, 42);
	freeReplyObject(reply);
	ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
	ck_assert_str_eq(((redisReply *)reply)->str, "OK");
	freeReplyObject(reply);
	ck_assert_str_eq(b.why, "");
	redisReaderFree(r);
}
END_TEST

/* ---- clock ---- */

START_TEST(clock_settings)
{
	struct rtclock c;
	char why[128];
	ck_assert(rtclock_parse("system", &c, why, sizeof(why)));
	ck_assert(!c.is_fixed);
	ck_assert(rtclock_parse("", &c, why, sizeof(why)));
	ck_assert_int_eq(rtclock_at(&c, 12345), 12345);
	ck_assert(rtclock_parse("fixed:20240506143000", &c, why, sizeof(why)));
	ck_assert(c.is_fixed);
	ck_assert_int_eq(rtclock_at(&c, 12345), 1714973400); /* 05:30 UTC */
	/* Monday 14:30 Korea time: slot 14 */
	ck_assert_int_eq(rkeys_congestion_slot(kst_weekday(c.fixed), kst_hour(c.fixed)), 14);
	ck_assert(!rtclock_parse("fixed:20240230000000", &c, why, sizeof(why)));
	ck_assert(!rtclock_parse("fast:10", &c, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "fixed:YYYYMMDDHHMMSS"));
	ck_assert(rtclock_check("system", why, sizeof(why)));
	ck_assert(!rtclock_check("fixed:2024", why, sizeof(why)));
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("realtimed");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, table_keeps_only_newer);
	tcase_add_test(tc, table_refuses_bad_ids);
	tcase_add_test(tc, table_dirty_fifo);
	tcase_add_test(tc, table_seed_and_quick_flags);
	tcase_add_test(tc, table_availability_take_and_claim);
	tcase_add_test(tc, rkeys_status_values);
	tcase_add_test(tc, table_stamps_and_gone);
	tcase_add_test(tc, table_removal_survives_a_load);
	tcase_add_test(tc, table_grows);
	suite_add_tcase(s, tc);
	tc = tcase_create("rbound");
	tcase_add_test(tc, rbound_refuses_huge_array);
	tcase_add_test(tc, rbound_refuses_nested_total);
	tcase_add_test(tc, rbound_refuses_long_bulk);
	tcase_add_test(tc, rbound_passes_ordinary_replies);
	suite_add_tcase(s, tc);
	tc = tcase_create("clock");
	tcase_add_test(tc, clock_settings);
	suite_add_tcase(s, tc);
	return s;
}
