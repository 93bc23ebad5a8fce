/* server: the HTTP face of the simulator. Owns the evhttp listener, the
 * gateway (keys, quotas), the request pipeline for the two operations
 * (parameters, faults, rendering, sending), the admin endpoints and the
 * request statistics. One thread, one event_base. */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include "faults.h"
#include "gen.h"
#include "model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

struct sim_config {
	const char *bind;
	int port;
	uint64_t seed;
	uint64_t chargers;
	char **keys; /* borrowed */
	size_t key_count;
	long quota; /* calls per key per KST day; 0 = unlimited */
	struct sim_clock clock;
	int epoch;
	int max_period; /* minutes */
	struct faults faults;
};

struct sim_server;

struct sim_server *server_new(struct event_base *base, const struct sim_config *cfg, char *err,
			      size_t errlen);
int server_port(const struct sim_server *srv);
void server_free(struct sim_server *srv);

#endif
