/* restore: seeds the congestion counters of an empty Redis from the latest
 * PostgreSQL snapshot, by running `ingestd congestion --restore` as a child
 * process (the one tool that reads snapshots; it writes with SET NX, so a
 * counter that exists is never overwritten) and reporting its outcome on
 * the event loop.
 *
 * Owns the child: started with fork + execve (only async-signal-safe calls
 * between them; descriptors from 3 up are closed, so the child holds none
 * of realtimed's sockets), its environment realtimed's own with
 * DATABASE_URL and REDIS_URL set from the loaded settings (secrets go
 * through the environment, never argv), reaped on SIGCHLD. restore_free
 * sends SIGTERM to a child still running and waits for it. */
#ifndef REALTIMED_RESTORE_H
#define REALTIMED_RESTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

struct event_base;

enum restore_outcome {
	RESTORE_DONE,	     /* counters written from the snapshot (exit 0) */
	RESTORE_NO_SNAPSHOT, /* nothing to restore (exit 66): a first deployment */
	RESTORE_FAILED,	     /* any other exit, a signal, or the child not started */
};

/* on_done(ctx, outcome, what): what is a short description (exit code). */
typedef void (*restore_done_fn)(void *ctx, enum restore_outcome outcome, const char *what);

struct restore;

struct restore *restore_new(struct event_base *base, restore_done_fn on_done,
			    void *ctx) MUSTCHECK;
void restore_free(struct restore *r);

/* The ingestd to run for a setting: "" -> NULL (restore off); "auto" -> the
 * ingestd beside this executable; else the path itself. buf holds the
 * result. */
const char *restore_resolve_ingestd(const char *setting, char *buf, size_t buflen);

/* Start `ingestd congestion --restore`; false (with err) when it could not
 * be started or one is already running. */
bool restore_start(struct restore *r, const char *ingestd, const char *database_url,
		   const char *redis_url, char *err, size_t errlen) MUSTCHECK;
bool restore_is_running(const struct restore *r);

#endif
