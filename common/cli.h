/* cli: the command-line conventions all three roles share.
 * Owns the global options (--help, --version, --config FILE, --print-config,
 * --help-config), the usage text layout, and turning a settings load into an
 * exit code: a bad value prints one line naming the key and exits 78
 * (EX_CONFIG). Role options and subcommands are left in order for the role
 * to parse (cli.args). */
#ifndef EV_CLI_H
#define EV_CLI_H

#include <stdbool.h>

#include "cfg.h"

struct cli_spec {
	const char *role;    /* "apid" */
	const char *summary; /* one line: what the program does */
	const char *usage;   /* role-specific usage lines (subcommands, options, exit codes) */
};

struct cli {
	const char *config_file; /* --config FILE, or NULL */
	bool print_config;
	bool help_config;
	int nargs;   /* arguments left for the role, in order */
	char **args; /* borrowed from argv; owned by cli (the array) */
};

/* Parse argv. Returns -1 to continue, else an exit code (0 after --help or
 * --version, EXIT_USAGE for a bad global option, message printed). */
int cli_parse(const struct cli_spec *spec, int argc, char **argv, struct cli *out);
/* Load settings from --config and the environment. Returns -1 to continue,
 * else an exit code: EXIT_CONFIG with one line on stderr, or 0 after
 * --print-config / --help-config. Applies LOG_LEVEL/LOG_FORMAT and secrets. */
int cli_load_settings(const struct cli_spec *spec, const struct cli *cli,
		      const struct cfg_schema *schema, void *settings);
void cli_free(struct cli *cli);
/* Print "<role>: " + message + usage hint to stderr; returns EXIT_USAGE. */
int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
