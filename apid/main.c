/* apid: the REST API for map clients (../shared/API.md). */
#include <stddef.h>
#include <stdio.h>

#include "base.h"
#include "cli.h"
#include "log.h"
#include "settings.h"

struct apid_settings {
	struct common_settings common;
	int port;
	char *bind;
};

static const struct cfg_key apid_keys[] = {
	{"APID_PORT", CFG_INT, 0, 65535, "8080", 0, "TCP port to listen on; 0 = any free port",
	 offsetof(struct apid_settings, port), NULL, NULL},
	{"APID_BIND", CFG_STR, 0, 255, "0.0.0.0", 0, "Address to listen on",
	 offsetof(struct apid_settings, bind), NULL, NULL},
};
static const struct cfg_table apid_table = {apid_keys, ARRAY_LEN(apid_keys)};
static const struct cfg_table *const apid_tables[] = {&common_cfg_table, &apid_table};
static const struct cfg_schema schema = {"apid", "APID_", apid_tables, ARRAY_LEN(apid_tables)};

static const struct cli_spec spec = {
	.role = "apid",
	.summary = "serve the EV charger REST API to map clients",
	.usage = "Usage: apid [global options]\n\n"
		 "Exit codes:\n"
		 "  0   stopped cleanly (SIGTERM)\n"
		 "  64  bad command line\n"
		 "  69  a store or the listening socket is unavailable\n"
		 "  78  configuration error\n",
};

int main(int argc, char **argv)
{
	struct cli cli;
	struct apid_settings settings = {0};
	int rc = cli_parse(&spec, argc, argv, &cli);
	if (rc >= 0)
		goto out;
	log_setup(spec.role, LOG_INFO);
	rc = cli_load_settings(&spec, &cli, &schema, &settings);
	if (rc >= 0)
		goto out;
	if (cli.nargs > 0) {
		rc = cli_usage_error(&spec, "unexpected argument '%s'", cli.args[0]);
		goto out;
	}
	log_error("serving is not implemented in this build yet");
	rc = EXIT_UNAVAILABLE;
out:
	cfg_free(&schema, &settings);
	cli_free(&cli);
	return rc;
}
