/* upstream-sim: the public EV charger API (B552584/EvCharger) on loopback,
 * at any scale, with faults. Parses the command line, builds the server and
 * runs the event loop until SIGTERM/SIGINT. docs/simulator.md is the manual. */
#include "server.h"

#include "sim.h"
#include "simtime.h"
#include "tables.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEYS     64
#define MAX_CHARGERS 60000000ULL

void sim_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "upstream-sim: %s\n", line);
}

static const char usage_text[] =
	"usage: upstream-sim [options]\n"
	"Simulates the public EV charger API (B552584/EvCharger) on loopback.\n"
	"\n"
	"  --port P            TCP port; 0 picks a free one (default 0)\n"
	"  --bind ADDR         listen address (default 127.0.0.1)\n"
	"  --port-file PATH    write the bound port to PATH (atomically, via rename)\n"
	"  --seed S            data seed, 0..2^64-1 (default 1)\n"
	"  --chargers N        chargers at epoch 0, 1..60000000 (default 10000)\n"
	"  --keys a,b          accepted service keys (default test-key)\n"
	"  --quota N           calls per key per KST day, 0 = unlimited (default 0)\n"
	"  --clock MODE        real | fast:X | fixed:YYYYMMDDHHMMSS (KST) (default real)\n"
	"  --start TS          simulated start time for real and fast clocks (KST)\n"
	"  --epoch E           master-data epoch, 0..1000 (default 0)\n"
	"  --max-period M      largest accepted period in minutes, 1..1440 (default 1440)\n"
	"  --faults QUERY      initial faults, as /__admin/faults takes them\n"
	"                      (e.g. 'http5xx=0.1&latency=next:2&latency_ms=500')\n"
	"  --malformed-rate R  fraction of records with a documented defect (default 0)\n"
	"  --fault-seed S      seed of the fault PRNG (default: --seed)\n"
	"  --list-regions      print the district table (TSV) and exit\n"
	"  --list-operators    print the operator table (TSV) and exit\n"
	"  --help              this text\n"
	"\n"
	"Admin: /__stats /__health /__admin/{faults,clock,epoch,status,charger,quota}.\n"
	"Exit codes: 0 after SIGTERM/SIGINT, 64 bad arguments, 69 cannot listen.\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sim_log("%s (see --help)", msg);
	exit(EXIT_USAGE);
}

static unsigned long long parse_u64(const char *opt, const char *text, unsigned long long min,
				    unsigned long long max)
{
	char *end;
	errno = 0;
	if (!text[0] || text[0] == '-')
		usage_error("%s needs a number in %llu..%llu, got '%s'", opt, min, max, text);
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end || v < min || v > max)
		usage_error("%s needs a number in %llu..%llu, got '%s'", opt, min, max, text);
	return v;
}

static size_t split_keys(char *list, char **keys)
{
	size_t n = 0;
	char *save = NULL;
	for (char *p = list; *p; p++)
		if (p[0] == ',' && (p[1] == ',' || p[1] == 0))
			usage_error("--keys has an empty key");
	if (list[0] == ',' || !list[0])
		usage_error("--keys has an empty key");
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == MAX_KEYS)
			usage_error("--keys takes at most %d keys", MAX_KEYS);
		keys[n++] = tok;
	}
	return n;
}

static void list_regions(void)
{
	printf("zcode\tnew_zcode\tzscode_suffix\tdistrict\tlat_e6\tlng_e6\thalf_lat_e6\thalf_lng_"
	       "e6\tweight\n");
	for (size_t i = 0; i < sim_region_count; i++) {
		const struct sim_region *r = &sim_regions[i];
		printf("%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", r->zcode,
		       r->new_zcode ? r->new_zcode : "-", r->suffix, r->district, r->lat_e6,
		       r->lng_e6, r->half_lat_e6, r->half_lng_e6, r->weight);
	}
}

static void list_operators(void)
{
	printf("busiId\tbnm\tbusiNm\tbusiCall\tweight_pm\n");
	for (size_t i = 0; i < sim_operator_count; i++) {
		const struct sim_operator *o = &sim_operators[i];
		printf("%s\t%s\t%s\t%s\t%d\n", o->code, o->bnm, o->busi_nm, o->call, o->weight_pm);
	}
}

static bool write_port_file(const char *path, int port)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return false;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return false;
	bool ok = fprintf(f, "%d\n", port) > 0;
	ok = fclose(f) == 0 && ok;
	if (ok && rename(tmp, path) == 0)
		return true;
	unlink(tmp);
	return false;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	sim_log("signal %d: stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

enum {
	OPT_PORT = 256,
	OPT_BIND,
	OPT_PORT_FILE,
	OPT_SEED,
	OPT_CHARGERS,
	OPT_KEYS,
	OPT_QUOTA,
	OPT_CLOCK,
	OPT_START,
	OPT_EPOCH,
	OPT_MAX_PERIOD,
	OPT_FAULTS,
	OPT_MALFORMED,
	OPT_FAULT_SEED,
	OPT_LIST_REGIONS,
	OPT_LIST_OPERATORS,
	OPT_HELP
};

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"port", required_argument, NULL, OPT_PORT},
		{"bind", required_argument, NULL, OPT_BIND},
		{"port-file", required_argument, NULL, OPT_PORT_FILE},
		{"seed", required_argument, NULL, OPT_SEED},
		{"chargers", required_argument, NULL, OPT_CHARGERS},
		{"keys", required_argument, NULL, OPT_KEYS},
		{"quota", required_argument, NULL, OPT_QUOTA},
		{"clock", required_argument, NULL, OPT_CLOCK},
		{"start", required_argument, NULL, OPT_START},
		{"epoch", required_argument, NULL, OPT_EPOCH},
		{"max-period", required_argument, NULL, OPT_MAX_PERIOD},
		{"faults", required_argument, NULL, OPT_FAULTS},
		{"malformed-rate", required_argument, NULL, OPT_MALFORMED},
		{"fault-seed", required_argument, NULL, OPT_FAULT_SEED},
		{"list-regions", no_argument, NULL, OPT_LIST_REGIONS},
		{"list-operators", no_argument, NULL, OPT_LIST_OPERATORS},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	struct sim_config cfg = {
		.bind = "127.0.0.1",
		.port = 0,
		.seed = 1,
		.chargers = 10000,
		.max_period = 1440,
	};
	char default_keys[] = "test-key";
	char *keys_arg = default_keys;
	char *keys[MAX_KEYS];
	const char *clock_spec = "real", *start = NULL, *port_file = NULL, *faults_query = NULL;
	const char *malformed = NULL;
	unsigned long long fault_seed = 0;
	bool fault_seed_set = false;
	char err[512];

	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case OPT_PORT: cfg.port = (int)parse_u64("--port", optarg, 0, 65535); break;
		case OPT_BIND: cfg.bind = optarg; break;
		case OPT_PORT_FILE: port_file = optarg; break;
		case OPT_SEED: cfg.seed = parse_u64("--seed", optarg, 0, UINT64_MAX); break;
		case OPT_CHARGERS:
			cfg.chargers = parse_u64("--chargers", optarg, 1, MAX_CHARGERS);
			break;
		case OPT_KEYS: keys_arg = optarg; break;
		case OPT_QUOTA:
			cfg.quota = (long)parse_u64("--quota", optarg, 0, 1000000000);
			break;
		case OPT_CLOCK: clock_spec = optarg; break;
		case OPT_START: start = optarg; break;
		case OPT_EPOCH:
			cfg.epoch = (int)parse_u64("--epoch", optarg, 0, SIM_MAX_EPOCH);
			break;
		case OPT_MAX_PERIOD:
			cfg.max_period = (int)parse_u64("--max-period", optarg, 1, 1440);
			break;
		case OPT_FAULTS: faults_query = optarg; break;
		case OPT_MALFORMED: malformed = optarg; break;
		case OPT_FAULT_SEED:
			fault_seed = parse_u64("--fault-seed", optarg, 0, UINT64_MAX);
			fault_seed_set = true;
			break;
		case OPT_LIST_REGIONS: list_regions(); return EXIT_OK;
		case OPT_LIST_OPERATORS: list_operators(); return EXIT_OK;
		case OPT_HELP: fputs(usage_text, stdout); return EXIT_OK;
		case ':': usage_error("%s needs a value", argv[optind - 1]);
		default: usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	cfg.key_count = split_keys(keys_arg, keys);
	cfg.keys = keys;
	if (!clock_parse(&cfg.clock, clock_spec, err, sizeof(err)))
		usage_error("%s", err);
	if (start) {
		int64_t t;
		if (!simtime_parse_kst(start, &t))
			usage_error("--start needs YYYYMMDDHHMMSS (KST), got '%s'", start);
		if (cfg.clock.mode == CLOCK_FIXED)
			usage_error("--start applies to real and fast clocks; fixed:TS sets its "
				    "own time");
		clock_set(&cfg.clock, t);
	}
	faults_init(&cfg.faults, fault_seed_set ? fault_seed : cfg.seed);
	if (faults_query && !faults_apply_query(&cfg.faults, faults_query, err, sizeof(err)))
		usage_error("--faults: %s", err);
	if (malformed) {
		char *end;
		errno = 0;
		double r = strtod(malformed, &end);
		if (errno || end == malformed || *end || !(r >= 0 && r <= 1))
			usage_error("--malformed-rate needs 0..1, got '%s'", malformed);
		cfg.faults.malformed_rate = r;
	}

	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	if (!base) {
		sim_log("cannot create the event loop");
		return EXIT_SOFTWARE;
	}
	struct sim_server *srv = server_new(base, &cfg, err, sizeof(err));
	if (!srv) {
		sim_log("%s", err);
		event_base_free(base);
		return strstr(err, "listen") ? EXIT_UNAVAILABLE : EXIT_USAGE;
	}
	int port = server_port(srv);
	if (port_file && !write_port_file(port_file, port)) {
		sim_log("cannot write port file %s: %s", port_file, strerror(errno));
		server_free(srv);
		event_base_free(base);
		return EXIT_UNAVAILABLE;
	}
	struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (sigterm)
		evsignal_add(sigterm, NULL);
	if (sigint)
		evsignal_add(sigint, NULL);
	sim_log("listening on %s:%d seed=%llu chargers=%llu epoch=%d clock=%s keys=%zu quota=%ld",
		cfg.bind, port, (unsigned long long)cfg.seed, (unsigned long long)cfg.chargers,
		cfg.epoch, clock_spec, cfg.key_count, cfg.quota);
	if (!port_file)
		printf("%d\n", port);
	fflush(stdout);
	event_base_dispatch(base);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	server_free(srv);
	event_base_free(base);
	libevent_global_shutdown();
	return EXIT_OK;
}
