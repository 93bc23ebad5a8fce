#include "testmain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
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
	return failed == 0 && total > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
