/* stopsig: SIGINT and SIGTERM for ingestd's jobs that block in libpq
 * (`congestion`, `export`).
 *
 * Owns the handler and its state: the first signal is remembered and the
 * statement the server runs is cancelled (PQcancel is safe in a handler), so
 * a long COPY or index build stops at once; the job sees the failure, asks
 * stopsig_caught(), cleans up and exits 128+signal. SIGPIPE is ignored while
 * installed. One job per process at a time: the state is static, a handler
 * has no other way in. (`chargers` runs a libevent loop and takes its
 * signals there.) */
#ifndef INGESTD_STOPSIG_H
#define INGESTD_STOPSIG_H

#include <libpq-fe.h>
#include <signal.h>

struct stopsig_saved {
	struct sigaction old_int, old_term, old_pipe;
};

/* Clears any earlier signal and installs the handler (no SA_RESTART: libpq
 * and hiredis retry EINTR themselves); the old dispositions go to *saved. */
void stopsig_install(struct stopsig_saved *saved);
void stopsig_restore(const struct stopsig_saved *saved);
/* The first SIGINT or SIGTERM since stopsig_install, or 0. */
int stopsig_caught(void);
/* The statement a signal cancels from now on (borrowed: disarm with NULL
 * before freeing it). */
void stopsig_arm(PGcancel *cancel);

#endif
