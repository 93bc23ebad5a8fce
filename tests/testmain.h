/* testmain: the one main() every test binary shares.
 * A test file defines test_suite() and nothing else global; testmain runs it
 * with Check (forked, so a crash fails one test, not the binary) and prints a
 * summary line tests/run.sh aggregates:
 *   RESULT <binary> passed=<n> failed=<n>
 * The per-test timeout comes from CK_DEFAULT_TIMEOUT (run.sh sets it) unless a
 * TCase sets its own with tcase_set_timeout(). */
#ifndef TESTMAIN_H
#define TESTMAIN_H

#include <check.h>

Suite *test_suite(void);

#endif
