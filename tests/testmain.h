/* testmain: the one main() every test binary shares.
 * A test file defines test_suite() and nothing else global; testmain runs it
 * with Check (forked, so a crash fails one test, not the binary) and prints a
 * summary line tests/run.sh aggregates:
 *   RESULT <binary> passed=<n> failed=<n>
 * The per-test timeout comes from CK_DEFAULT_TIMEOUT (run.sh sets it) unless a
 * TCase sets its own with tcase_set_timeout().
 *
 * Sharding: with TEST_SHARD=i/n (0 <= i < n) in the environment, a binary runs
 * only every n-th of its tests, counting each loop iteration as one, so
 * tests/run.sh can spread a slow binary over n processes. Tests that share a
 * fixed resource (a Redis db index, say) must not be sharded: run.sh names the
 * binaries it shards. */
#ifndef TESTMAIN_H
#define TESTMAIN_H

#include <check.h>

Suite *test_suite(void);

/* Every tcase_add_*test macro of Check ends in _tcase_add_test: routed here,
 * it registers only the tests of this process's shard. */
void testmain_add_test(TCase *tc, const TTest *test, int signal, int allowed_exit_value, int start,
		       int end);
#ifndef TESTMAIN_IMPL
#define _tcase_add_test testmain_add_test
#endif

/* Data sizes of the slowest integration tests: divided by 4 under
 * AddressSanitizer (make SAN=1), where each record costs several times the
 * CPU. The code paths are the same at any size; the plain pass keeps the
 * sizes the issues name, the sanitizer pass looks for memory errors. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_SANITIZED 1
#else
#define TEST_SANITIZED 0
#endif
static inline long test_size(long plain_size)
{
	return TEST_SANITIZED ? plain_size / 4 : plain_size;
}

#endif
