/* buf: growth, borrowed storage, sticky failure, locale-free numbers. */
#include "testmain.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

START_TEST(grows_from_borrowed_storage)
{
	char storage[8];
	struct buf b;
	buf_init_with(&b, storage, sizeof(storage));
	buf_puts(&b, "abc");
	ck_assert_ptr_eq(b.data, storage); /* fits: no allocation yet */
	ck_assert(b.is_borrowed);
	for (int i = 0; i < 1000; i++)
		buf_putc(&b, (char)('a' + i % 26));
	ck_assert(buf_ok(&b));
	ck_assert_ptr_ne(b.data, storage);
	ck_assert(!b.is_borrowed);
	ck_assert_uint_eq(b.len, 1003);
	ck_assert_uint_eq(strlen(buf_cstr(&b)), 1003); /* NUL-terminated */
	ck_assert_int_eq(memcmp(b.data, "abcabcdef", 9), 0);
	ck_assert_int_eq(b.data[1002], 'a' + 999 % 26);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	buf_free(NULL);
}
END_TEST

START_TEST(printf_reset_truncate_detach)
{
	struct buf b = BUF_INIT;
	ck_assert_str_eq(buf_cstr(&b), "");
	buf_printf(&b, "%s-%d", "x", 42);
	ck_assert_str_eq(buf_cstr(&b), "x-42");
	/* longer than the current capacity: formatted twice, once after growing */
	char big[3000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_printf(&b, "[%s]", big);
	ck_assert_uint_eq(b.len, 4 + 2 + 2999);
	ck_assert_int_eq(b.data[5], 'z');
	ck_assert_int_eq(b.data[b.len - 1], ']');
	buf_truncate(&b, 2);
	ck_assert_str_eq(buf_cstr(&b), "x-");
	buf_truncate(&b, 50); /* no-op when longer */
	ck_assert_uint_eq(b.len, 2);
	size_t cap = b.cap;
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, cap); /* memory kept */
	ck_assert_str_eq(buf_cstr(&b), "");
	buf_puts(&b, "owned");
	size_t len = 0;
	char *s = buf_detach(&b, &len);
	ck_assert_str_eq(s, "owned");
	ck_assert_uint_eq(len, 5);
	ck_assert_ptr_null(b.data);
	free(s);
	/* detach out of borrowed storage copies */
	char storage[16];
	buf_init_with(&b, storage, sizeof(storage));
	buf_puts(&b, "stack");
	s = buf_detach(&b, NULL);
	ck_assert_ptr_ne(s, storage);
	ck_assert_str_eq(s, "stack");
	free(s);
}
END_TEST

START_TEST(failure_is_sticky)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "ok");
	ck_assert(!buf_reserve(&b, SIZE_MAX - 1)); /* overflow, refused */
	ck_assert(!buf_ok(&b));
	buf_puts(&b, "more");
	ck_assert_str_eq(buf_cstr(&b), "ok"); /* appends after failure do nothing */
	ck_assert_ptr_null(buf_detach(&b, NULL));
	ck_assert_ptr_null(b.data); /* detach of a failed buffer frees it */
	buf_puts(&b, "x");
	ck_assert(buf_ok(&b));
	buf_reset(&b);
	b.failed = true;
	buf_reset(&b); /* reset clears the flag */
	ck_assert(buf_ok(&b));
	buf_free(&b);
}
END_TEST

START_TEST(integers)
{
	static const struct {
		int64_t v;
		const char *text;
	} cases[] = {
		{0, "0"},
		{-1, "-1"},
		{42, "42"},
		{INT64_MAX, "9223372036854775807"},
		{INT64_MIN, "-9223372036854775808"},
		{1000000, "1000000"},
	};
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&b);
		buf_put_int(&b, cases[i].v);
		ck_assert_str_eq(buf_cstr(&b), cases[i].text);
	}
	buf_reset(&b);
	buf_put_uint(&b, UINT64_MAX);
	ck_assert_str_eq(buf_cstr(&b), "18446744073709551615");
	buf_free(&b);
}
END_TEST

static const struct {
	double v;
	int decimals;
	const char *text;
} double_cases[] = {
	{37.5665, 6, "37.566500"},
	{126.978, 6, "126.978000"},
	{7, 2, "7.00"},
	{50, 2, "50.00"},
	{0.125, 2, "0.12"},  /* exact tie: printf rounds the binary value half-even */
	{0.375, 2, "0.38"},
	{2.5, 0, "2"},
	{3.5, 0, "4"},
	{1.005, 2, "1.00"},  /* 1.00499999999999989... */
	{-0.001, 2, "-0.00"},
	{-12.3456, 3, "-12.346"},
	{1e20, 2, "100000000000000000000.00"},
	{0.1, BUF_SHORTEST, "0.1"},
	{0.1 + 0.2, BUF_SHORTEST, "0.30000000000000004"},
	{37.5665, BUF_SHORTEST, "37.5665"},
	{50, BUF_SHORTEST, "50"},
	{-3, BUF_SHORTEST, "-3"},
	{1e300, BUF_SHORTEST, "1e+300"},
	{1e15, BUF_SHORTEST, "1e+15"},
	{123456789012345.0, BUF_SHORTEST, "123456789012345"},
	{5e-324, BUF_SHORTEST, "5e-324"},
	{2.2250738585072014e-308, BUF_SHORTEST, "2.2250738585072014e-308"},
	{DBL_MAX, BUF_SHORTEST, "1.7976931348623157e+308"},
	{-0.0, BUF_SHORTEST, "-0"},
	{0.005, BUF_SHORTEST, "0.005"},
};

START_TEST(doubles_table)
{
	struct buf b = BUF_INIT;
	buf_put_double(&b, double_cases[_i].v, double_cases[_i].decimals);
	ck_assert_str_eq(buf_cstr(&b), double_cases[_i].text);
	buf_free(&b);
}
END_TEST

START_TEST(doubles_non_finite)
{
	struct buf b = BUF_INIT;
	buf_put_double(&b, NAN, 2);
	buf_putc(&b, ' ');
	buf_put_double(&b, INFINITY, BUF_SHORTEST);
	buf_putc(&b, ' ');
	buf_put_double(&b, -INFINITY, 0);
	ck_assert_str_eq(buf_cstr(&b), "NaN +Inf -Inf");
	buf_free(&b);
}
END_TEST

/* Fixed notation equals printf's (C locale) and shortest reads back
 * exactly, over many pseudo-random values (fixed seed: reproducible). */
START_TEST(doubles_match_printf)
{
	uint64_t state = 0x9E3779B97F4A7C15ull;
	struct buf b = BUF_INIT;
	char want[512];
	int checked = 0;
	for (int i = 0; i < 200000; i++) {
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		double v;
		if (i % 2) {
			/* coordinates and kW-like magnitudes */
			v = (double)(state % 400000000) / (double)(1 + state % 100000);
			if (state & 1)
				v = -v;
		} else {
			memcpy(&v, &state, sizeof(v)); /* any bit pattern */
			if (!isfinite(v))
				continue;
		}
		int decimals = (int)(state >> 60) % 10;
		buf_reset(&b);
		buf_put_double(&b, v, decimals);
		snprintf(want, sizeof(want), "%.*f", decimals, v);
		/* plain tests: a Check assertion per round costs a syscall */
		if (strcmp(buf_cstr(&b), want) != 0)
			ck_abort_msg("%.17g with %d: %s, printf %s", v, decimals, buf_cstr(&b), want);
		buf_reset(&b);
		buf_put_double(&b, v, BUF_SHORTEST);
		if (strtod(buf_cstr(&b), NULL) != v || b.len > 24)
			ck_abort_msg("%.17g printed as %s", v, buf_cstr(&b));
		checked++;
	}
	ck_assert_int_gt(checked, 190000);
	buf_free(&b);
}
END_TEST

/* A process whose LC_NUMERIC uses ',' (de_DE and most of Europe) must
 * still write '.'. No such locale is installed on a bare system, so the
 * test compiles a minimal one with localedef into a temp dir. */
START_TEST(doubles_ignore_locale)
{
	char dir[256];
	const char *tmp = getenv("TEST_TMPDIR");
	snprintf(dir, sizeof(dir), "%s/test_buf_locale.XXXXXX", tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[512], cmd[1400];
	snprintf(path, sizeof(path), "%s/comma.src", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("LC_NUMERIC\ndecimal_point \",\"\nthousands_sep \".\"\ngrouping 3\nEND LC_NUMERIC\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "localedef -c -i %s -f ANSI_X3.4-1968 %s/comma >/dev/null 2>&1",
		 path, dir);
	ck_assert_int_ne(system(cmd), -1);
	setenv("LOCPATH", dir, 1);
	ck_assert_ptr_nonnull(setlocale(LC_NUMERIC, "comma"));
	char probe[32];
	snprintf(probe, sizeof(probe), "%.2f", 3.25);
	ck_assert_str_eq(probe, "3,25"); /* the locale is really in effect */

	struct buf b = BUF_INIT;
	buf_put_double(&b, 3.25, 2);
	buf_putc(&b, ' ');
	buf_put_double(&b, 0.1, BUF_SHORTEST);
	buf_putc(&b, ' ');
	buf_put_double(&b, 0.125, 2); /* the printf fallback path */
	buf_putc(&b, ' ');
	buf_put_double(&b, 1e20, 1);
	ck_assert_str_eq(buf_cstr(&b), "3.25 0.1 0.12 100000000000000000000.0");
	buf_free(&b);

	setlocale(LC_NUMERIC, "C");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *test_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("memory");
	tcase_add_test(tc, grows_from_borrowed_storage);
	tcase_add_test(tc, printf_reset_truncate_detach);
	tcase_add_test(tc, failure_is_sticky);
	suite_add_tcase(s, tc);
	tc = tcase_create("numbers");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, integers);
	tcase_add_loop_test(tc, doubles_table, 0, sizeof(double_cases) / sizeof(double_cases[0]));
	tcase_add_test(tc, doubles_non_finite);
	tcase_add_test(tc, doubles_match_printf);
	tcase_add_test(tc, doubles_ignore_locale);
	suite_add_tcase(s, tc);
	return s;
}
