/* ingestd/cgvalue.c: congestion keys and values as Redis holds them
 * (common/rkeys.h). Expected bytes are written out here by hand, not with
 * the module's encoder.
 *
 * Unit tests link libcommon only; the module is compiled in from its source
 * (it is self-contained). */
#include "testmain.h"

#include <stdio.h>
#include <string.h>

#include "../../ingestd/cgvalue.c"

static bool parse(const char *key, char *stat_id, char *chger_id, char *why)
{
	return cgvalue_parse_key(key, strlen(key), stat_id, chger_id, why, 128);
}

START_TEST(key_parses)
{
	char s[CGVALUE_ID_MAX + 1], c[CGVALUE_ID_MAX + 1], why[128];
	ck_assert(parse("ev:cg:ME174039:01", s, c, why));
	ck_assert_str_eq(s, "ME174039");
	ck_assert_str_eq(c, "01");
	/* the first ':' splits; a chgerId may hold more */
	ck_assert(parse("ev:cg:A:B:C", s, c, why));
	ck_assert_str_eq(s, "A");
	ck_assert_str_eq(c, "B:C");
	/* UTF-8 ids pass */
	ck_assert(parse("ev:cg:\xEC\xB6\xA9\xEC\xA0\x84:1", s, c, why));
	ck_assert_str_eq(s, "\xEC\xB6\xA9\xEC\xA0\x84");
	/* not NUL-terminated: only len bytes count */
	ck_assert(cgvalue_parse_key("ev:cg:X:7garbage", 9, s, c, why, sizeof(why)));
	ck_assert_str_eq(c, "7");
}
END_TEST

START_TEST(key_refused)
{
	static const struct {
		const char *key, *why;
	} cases[] = {
		{"ev:st:ME1:01", "does not start"},
		{"ev:cg", "does not start"},
		{"ev:cg:ME174039", "no ':'"},
		{"ev:cg::01", "statId is empty"},
		{"ev:cg:ME1:", "chgerId is empty"},
		{"ev:cg:ME\t1:01", "control byte 0x09"},
		{"ev:cg:ME1:0\n", "control byte 0x0a"},
		{"ev:cg:ME\xff:01", "not valid UTF-8"},
		{"ev:cg:ME1:\xC0\xAF", "not valid UTF-8"},
		{"ev:cg:12345678901234567890123456789012345678901:01", "41 bytes"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char s[CGVALUE_ID_MAX + 1], c[CGVALUE_ID_MAX + 1], why[128] = "";
		ck_assert_msg(!parse(cases[i].key, s, c, why), "%s accepted", cases[i].key);
		ck_assert_msg(strstr(why, cases[i].why), "%zu: '%s' lacks '%s'", i, why,
			      cases[i].why);
	}
	char s[CGVALUE_ID_MAX + 1], c[CGVALUE_ID_MAX + 1], why[128];
	/* a NUL inside the key */
	ck_assert(!cgvalue_parse_key("ev:cg:A\0B:01", 12, s, c, why, sizeof(why)));
	/* the longest accepted ids fit RKEYS_KEY_MAX once rebuilt */
	char key[128], big[CGVALUE_ID_MAX + 1];
	memset(big, 'x', CGVALUE_ID_MAX);
	big[CGVALUE_ID_MAX] = '\0';
	snprintf(key, sizeof(key), "ev:cg:%s:%s", big, big);
	ck_assert(parse(key, s, c, why));
	char rebuilt[RKEYS_KEY_MAX];
	ck_assert_int_lt(rkeys_congestion(rebuilt, sizeof(rebuilt), s, c), RKEYS_KEY_MAX);
	ck_assert_str_eq(rebuilt, key);
}
END_TEST

/* A layout-2 value written byte by byte as rkeys.h describes it: slot i's
 * samples, uses and out of service are 9 nibbles from nibble 9i, big-endian,
 * so an even slot starts on a byte and an odd one in the low nibble. */
static void value_bytes(unsigned char *v)
{
	memset(v, 0, RKEYS_CONGESTION_VALUE_BYTES);
	/* slot 0 (Monday 0 h): 3 samples, 1 use, 2 out of service:
	 * nibbles 003 001 002 */
	v[1] = 0x30;
	v[2] = 0x01;
	v[4] = 0x20;
	/* slot 37 (Tuesday 13 h), from byte 166's low nibble: 0x102 samples,
	 * 0x101 uses, 5 out of service: nibbles 102 101 005 */
	v[166] = 0x01;
	v[167] = 0x02;
	v[168] = 0x10;
	v[169] = 0x10;
	v[170] = 0x05;
	/* slot 167 (Sunday 23 h), from byte 751's low nibble: all saturated */
	v[751] = 0x0f;
	memset(v + 752, 0xff, 4);
	/* the marker at byte 756: 0x6745a2f0 = 1732616944 */
	v[756] = 0x67;
	v[757] = 0x45;
	v[758] = 0xa2;
	v[759] = 0xf0;
}

/* The same charger in layout 1 (u16 samples and uses per slot, the marker
 * at byte 672), with a count only layout 1 can hold. */
static void value_v1_bytes(unsigned char *v)
{
	memset(v, 0, RKEYS_CONGESTION_V1_VALUE_BYTES);
	v[1] = 3;
	v[3] = 1;
	v[4 * 37] = 1;
	v[4 * 37 + 1] = 2;
	v[4 * 37 + 2] = 1;
	v[4 * 37 + 3] = 1;
	memset(v + 4 * 167, 0xff, 4);
	v[672] = 0x67;
	v[673] = 0x45;
	v[674] = 0xa2;
	v[675] = 0xf0;
}

START_TEST(value_decodes_and_encodes_back)
{
	unsigned char v[RKEYS_CONGESTION_VALUE_BYTES];
	value_bytes(v);
	struct cgvalue d;
	char why[160];
	ck_assert_int_eq(cgvalue_decode(v, sizeof(v), &d, why, sizeof(why)), CGVALUE_OK);
	ck_assert_uint_eq(d.samples[0], 3);
	ck_assert_uint_eq(d.uses[0], 1);
	ck_assert_uint_eq(d.out_of_service[0], 2);
	ck_assert_uint_eq(d.samples[rkeys_congestion_slot(1, 13)], 258);
	ck_assert_uint_eq(d.uses[rkeys_congestion_slot(1, 13)], 257);
	ck_assert_uint_eq(d.out_of_service[rkeys_congestion_slot(1, 13)], 5);
	ck_assert_uint_eq(d.samples[167], 4095);
	ck_assert_uint_eq(d.uses[167], 4095);
	ck_assert_uint_eq(d.out_of_service[167], 4095);
	ck_assert_uint_eq(d.samples[100], 0);
	ck_assert_uint_eq(d.out_of_service[100], 0);
	ck_assert_uint_eq(d.last_sample, 1732616944u);
	ck_assert_uint_eq(cgvalue_samples_total(&d), 3 + 258 + 4095);
	ck_assert_uint_eq(cgvalue_out_of_service_total(&d), 2 + 5 + 4095);
	unsigned char back[RKEYS_CONGESTION_VALUE_BYTES];
	cgvalue_encode(&d, back);
	ck_assert(memcmp(v, back, sizeof(v)) == 0);
}
END_TEST

/* A layout-1 value decodes (out of service 0) and encodes as layout 2:
 * what realtimed's conversion writes, 65535 saturated at 4095. */
START_TEST(layout1_value_decodes_and_encodes_as_layout2)
{
	unsigned char v1[RKEYS_CONGESTION_V1_VALUE_BYTES];
	value_v1_bytes(v1);
	struct cgvalue d;
	char why[160];
	ck_assert_int_eq(cgvalue_decode(v1, sizeof(v1), &d, why, sizeof(why)), CGVALUE_OK);
	ck_assert_uint_eq(d.samples[0], 3);
	ck_assert_uint_eq(d.uses[0], 1);
	ck_assert_uint_eq(d.samples[37], 258);
	ck_assert_uint_eq(d.uses[37], 257);
	ck_assert_uint_eq(d.samples[167], 65535);
	ck_assert_uint_eq(d.uses[167], 65535);
	for (int slot = 0; slot < RKEYS_CONGESTION_SLOTS; slot++)
		ck_assert_uint_eq(d.out_of_service[slot], 0);
	ck_assert_uint_eq(d.last_sample, 1732616944u);
	unsigned char back[RKEYS_CONGESTION_VALUE_BYTES], want[RKEYS_CONGESTION_VALUE_BYTES];
	cgvalue_encode(&d, back);
	value_bytes(want);
	want[4] = 0x00; /* no out of service in slot 0 */
	want[169] = 0x10; /* nor in slot 37 */
	want[170] = 0x00;
	want[754] = 0xf0; /* nor in slot 167 */
	want[755] = 0x00;
	ck_assert(memcmp(back, want, sizeof(want)) == 0);
}
END_TEST

START_TEST(value_refused)
{
	unsigned char v[RKEYS_CONGESTION_VALUE_BYTES + 1];
	value_bytes(v);
	struct cgvalue d;
	char why[160];
	/* counters without the marker; a byte more; a byte short of layout 1;
	 * nothing */
	ck_assert_int_eq(cgvalue_decode(v, RKEYS_CONGESTION_BYTES, &d, why, sizeof(why)),
			 CGVALUE_BAD_LENGTH);
	ck_assert_msg(strstr(why, "756 bytes, not 760 (or 676, layout 1)"), "%s", why);
	ck_assert_int_eq(cgvalue_decode(v, sizeof(v), &d, why, sizeof(why)), CGVALUE_BAD_LENGTH);
	ck_assert_int_eq(cgvalue_decode(v, 675, &d, why, sizeof(why)), CGVALUE_BAD_LENGTH);
	ck_assert_int_eq(cgvalue_decode(v, 0, &d, why, sizeof(why)), CGVALUE_BAD_LENGTH);
	/* more uses than samples in Tuesday 13 h: 0x201 */
	v[168] = 0x20;
	ck_assert_int_eq(cgvalue_decode(v, RKEYS_CONGESTION_VALUE_BYTES, &d, why, sizeof(why)),
			 CGVALUE_BAD_COUNTS);
	ck_assert_msg(strstr(why, "slot 37 (Tuesday 13 h): 513 uses of 258 samples"), "%s", why);
	/* more out of service than samples there: 0x103 */
	v[168] = 0x10;
	v[169] = 0x11;
	v[170] = 0x03;
	ck_assert_int_eq(cgvalue_decode(v, RKEYS_CONGESTION_VALUE_BYTES, &d, why, sizeof(why)),
			 CGVALUE_BAD_COUNTS);
	ck_assert_msg(strstr(why, "slot 37 (Tuesday 13 h): 259 out of service of 258 samples"),
		      "%s", why);
	/* in layout 1, more uses than samples */
	unsigned char v1[RKEYS_CONGESTION_V1_VALUE_BYTES];
	value_v1_bytes(v1);
	v1[4 * 37 + 2] = 2;
	ck_assert_int_eq(cgvalue_decode(v1, sizeof(v1), &d, why, sizeof(why)),
			 CGVALUE_BAD_COUNTS);
	ck_assert_msg(strstr(why, "slot 37 (Tuesday 13 h): 513 uses of 258 samples"), "%s", why);
	ck_assert_str_eq(cgvalue_reject_name(CGVALUE_BAD_COUNTS), "bad_counts");
	ck_assert_str_eq(cgvalue_reject_name(CGVALUE_BAD_KEY), "bad_key");
	ck_assert_str_eq(cgvalue_reject_name(CGVALUE_BAD_TYPE), "bad_type");
	ck_assert_str_eq(cgvalue_reject_name(CGVALUE_BAD_LENGTH), "bad_length");
}
END_TEST

START_TEST(numbers_render)
{
	char out[6], line[64];
	static const struct {
		uint16_t n;
		const char *text;
	} cases[] = {{0, "0"}, {7, "7"}, {10, "10"}, {99, "99"}, {100, "100"}, {65535, "65535"}};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		ck_assert_uint_eq(cgvalue_u16_text(cases[i].n, out), strlen(cases[i].text));
		ck_assert_str_eq(out, cases[i].text);
	}
	for (unsigned n = 0; n <= 65535; n += 7) {
		cgvalue_u16_text((uint16_t)n, out);
		snprintf(line, sizeof(line), "%u", n);
		ck_assert_str_eq(out, line);
	}
	char hex[9];
	cgvalue_hex("\x00\x7f\xab\xff", 4, hex);
	ck_assert_str_eq(hex, "007fabff");
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("cgvalue");
	TCase *tc = tcase_create("cgvalue");
	tcase_add_test(tc, key_parses);
	tcase_add_test(tc, key_refused);
	tcase_add_test(tc, value_decodes_and_encodes_back);
	tcase_add_test(tc, layout1_value_decodes_and_encodes_as_layout2);
	tcase_add_test(tc, value_refused);
	tcase_add_test(tc, numbers_render);
	suite_add_tcase(s, tc);
	return s;
}
