#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "settings.h"
#include "version.h"

extern char **environ;

static void print_help(const struct cli_spec *spec)
{
	printf("%s - %s\n\n%s\n"
	       "Global options:\n"
	       "  --config FILE     read KEY=VALUE settings from FILE (the environment wins)\n"
	       "  --print-config    print the effective settings (secrets masked) and exit\n"
	       "  --help-config     print the settings reference (Markdown) and exit\n"
	       "  --version         print the version and exit\n"
	       "  --help            print this help and exit\n\n"
	       "Settings come from environment variables; see --help-config or docs/config.md.\n",
	       spec->role, spec->summary, spec->usage);
}

int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", spec->role);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry '%s --help'.\n", spec->role);
	va_end(ap);
	return EXIT_USAGE;
}

int cli_parse(const struct cli_spec *spec, int argc, char **argv, struct cli *out)
{
	memset(out, 0, sizeof(*out));
	out->args = calloc((size_t)argc + 1, sizeof(char *));
	if (!out->args) {
		fprintf(stderr, "%s: out of memory\n", spec->role);
		return EXIT_SOFTWARE;
	}
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			print_help(spec);
			return EXIT_OK;
		} else if (strcmp(arg, "--version") == 0) {
			printf("%s %s\n", spec->role, version_string);
			return EXIT_OK;
		} else if (strcmp(arg, "--config") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error(spec, "--config needs a file name");
			out->config_file = argv[++i];
		} else if (strncmp(arg, "--config=", 9) == 0) {
			out->config_file = arg + 9;
		} else if (strcmp(arg, "--print-config") == 0) {
			out->print_config = true;
		} else if (strcmp(arg, "--help-config") == 0) {
			out->help_config = true;
		} else {
			out->args[out->nargs++] = argv[i];
		}
	}
	return -1;
}

int cli_load_settings(const struct cli_spec *spec, const struct cli *cli,
		      const struct cfg_schema *schema, void *settings)
{
	if (cli->help_config) {
		cfg_print_reference(schema, stdout);
		return EXIT_OK;
	}
	char err[512];
	if (!cfg_load(schema, settings, cli->config_file, environ, err, sizeof(err))) {
		fprintf(stderr, "%s: configuration error: %s\n", spec->role, err);
		return EXIT_CONFIG;
	}
	settings_apply_logging(schema, settings);
	if (cli->print_config) {
		cfg_print(schema, settings, stdout);
		return EXIT_OK;
	}
	return -1;
}

void cli_free(struct cli *cli)
{
	free(cli->args);
	cli->args = NULL;
}
