#define TESTMAIN_IMPL
#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int shard_index, shard_count = 1; /* TEST_SHARD=i/n */
static int units_seen;			 /* tests and loop iterations registered */

void testmain_add_test(TCase *tc, const TTest *test, int signal, int allowed_exit_value, int start,
		       int end)
{
	for (int i = start; i < end; i++)
		if (units_seen++ % shard_count == shard_index)
			_tcase_add_test(tc, test, signal, allowed_exit_value, i, i + 1);
}

static void read_shard(void)
{
	const char *spec = getenv("TEST_SHARD");
	if (!spec || !*spec)
		return;
	if (sscanf(spec, "%d/%d", &shard_index, &shard_count) != 2 || shard_count < 1 ||
	    shard_index < 0 || shard_index >= shard_count) {
		fprintf(stderr, "TEST_SHARD=%s: expected i/n with 0 <= i < n\n", spec);
		exit(EXIT_FAILURE);
	}
}

int main(int argc, char **argv)
{
	read_shard();
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	SRunner *runner = srunner_create(test_suite());
	/* argv[1], when given, runs one test case: `test_cfg bounds` */
	if (argc > 1)
		srunner_run(runner, NULL, argv[1], CK_NORMAL);
	else
		srunner_run_all(runner, CK_NORMAL);
	int total = srunner_ntests_run(runner);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	printf("RESULT %s passed=%d failed=%d\n", name, total - failed, failed);
	/* a shard may be empty when a binary has fewer tests than shards */
	return failed == 0 && (total > 0 || shard_count > 1) ? EXIT_SUCCESS : EXIT_FAILURE;
}
