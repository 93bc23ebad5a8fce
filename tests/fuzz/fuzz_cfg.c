/* Fuzz the settings loader: a KEY=VALUE file of any content is either
 * loaded or refused with a message, never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"
#include "settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_settings {
	struct common_settings common;
	int port;
	double ratio;
	struct cfg_list list;
};

static const struct cfg_key fuzz_keys[] = {
	{"APID_PORT", CFG_INT, 0, 65535, "8080", 0, "port", offsetof(struct fuzz_settings, port),
	 NULL, NULL},
	{"APID_RATIO", CFG_DOUBLE, 0, 1, "0.5", 0, "ratio", offsetof(struct fuzz_settings, ratio),
	 NULL, NULL},
	{"APID_LIST", CFG_LIST, 0, 8, "a,b", CFG_SECRET, "list",
	 offsetof(struct fuzz_settings, list), NULL, NULL},
};
static const struct cfg_table fuzz_table = {fuzz_keys, 3};
static const struct cfg_table *const fuzz_tables[] = {&common_cfg_table, &fuzz_table};
static const struct cfg_schema fuzz_schema = {"apid", "APID_", fuzz_tables, 2};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("cfg", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct fuzz_settings settings = {0};
	char err[512];
	if (cfg_load(&fuzz_schema, &settings, path, NULL, err, sizeof(err))) {
		FILE *sink = fopen("/dev/null", "w");
		if (sink) {
			cfg_print(&fuzz_schema, &settings, sink);
			fclose(sink);
		}
		cfg_free(&fuzz_schema, &settings);
	}
	close(fd);
	return 0;
}
