/* admin: realtimed's small HTTP listener on 127.0.0.1 for operators and
 * monitoring: GET /healthz (JSON; 200 when the instance is doing its job,
 * 503 with the reason otherwise) and GET /metrics (Prometheus text).
 *
 * Owns the evhttp server and the bound socket, and writes the bound port
 * (the configured one, or the kernel's pick for port 0) to a file by
 * atomic rename, for tests and tools. What the answers say comes from the
 * owner's callbacks: this module knows nothing of realtimed's state. */
#ifndef REALTIMED_ADMIN_H
#define REALTIMED_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"
#include "buf.h"

struct event_base;

struct admin_ops {
	/* Fill the /healthz JSON body; return the status (200 or 503). */
	int (*health)(void *ctx, struct buf *body);
	/* Fill the /metrics body; false on failure (500). */
	bool (*metrics)(void *ctx, struct buf *body);
};

struct admin;

/* Bind 127.0.0.1:port (0: any free) and write the port to port_file (NULL
 * or "": none). NULL with the reason in err. */
struct admin *admin_new(struct event_base *base, int port, const char *port_file,
			const struct admin_ops *ops, void *ctx, char *err, size_t errlen) MUSTCHECK;
void admin_free(struct admin *a);
int admin_port(const struct admin *a);

#endif
