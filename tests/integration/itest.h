/* itest: what integration tests share. Owns access to the stores the harness
 * (tests/run.sh) started, per-test databases and temp dirs, child processes
 * (each in its own process group, killed with the test: PR_SET_PDEATHSIG plus
 * an atexit sweep, so a failed or timed-out test leaves nothing running), and
 * small HTTP and store clients.
 *
 * Environment set by tests/run.sh:
 *   TEST_ROOT      repository root (migrations/, tests/data/)
 *   TEST_BIN       the binaries under test (bin/, or build/san/bin for SAN=1)
 *   TEST_TMPDIR    this run's scratch dir (removed by run.sh)
 *   TEST_PG_URL    superuser URL of the shared throwaway PostgreSQL
 *   TEST_REDIS_URL URL of the shared throwaway Redis (tests use their own db
 *                  index or key prefix, or start a private Redis) */
#ifndef ITEST_H
#define ITEST_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The variable's value; fails the test when unset. */
const char *itest_env(const char *name);
/* "$TEST_BIN/<name>" in a per-thread static buffer, overwritten by the next
 * call; "upstream-sim" is $TEST_SIM_BIN when that is set (tests/run.sh: the
 * unsanitized simulator for the SAN pass of tests that do not test it). */
const char *itest_bin(const char *name);
/* "$TEST_ROOT/<relative>". Caller frees. */
char *itest_path(const char *relative);
/* A whole file, NUL-terminated (caller frees); fails the test when it cannot
 * be opened. */
char *itest_read_file(const char *path);
/* The same, with its length (it may hold NUL bytes). */
char *itest_read_file_len(const char *path, size_t *len);
/* A fresh empty directory under TEST_TMPDIR. Caller frees. */
char *itest_tmpdir(const char *label);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int itest_free_port(void);

/* A fresh database on the shared server (CREATE DATABASE <prefix>_<pid>_<n>).
 * Returns its URL (caller frees); dropped by the atexit sweep. */
char *itest_create_db(const char *prefix);
/* Connect or fail the test. Caller PQfinish()es. */
PGconn *itest_pg_connect(const char *url);
/* Run SQL expecting success; returns the result (caller PQclear()s). */
PGresult *itest_pg_exec(PGconn *conn, const char *sql);
/* First column of the first row as a long; fails the test on error. */
long itest_pg_long(PGconn *conn, const char *sql);

/* Private store instances, for tests that stop or kill them (degraded modes,
 * restarts). Started by tests/harness/stores.sh in a temp dir; stopped by
 * itest_store_stop or the atexit sweep. */
struct itest_store {
	char *dir;
	char *url;
	int port;
};
bool itest_redis_start(struct itest_store *store);
bool itest_pg_start(struct itest_store *store);
/* how: "stop" (clean), "kill" (SIGKILL), "start" (restart on the same port). */
bool itest_store_ctl(struct itest_store *store, const char *kind, const char *how);
void itest_store_stop(struct itest_store *store, const char *kind);

/* CLOCK_MONOTONIC in milliseconds: deadlines that hold on a loaded machine. */
long itest_now_ms(void);

/* A child process: own process group, stdout and stderr to `log`. */
struct itest_proc {
	pid_t pid;
	char *log; /* path of the output file, owned */
	int status; /* wait status once reaped */
	bool reaped;
};
/* argv[0] is a path; env_extra (NULL-terminated "K=V" list, may be NULL) is
 * added to the environment. */
bool itest_spawn(struct itest_proc *proc, char *const argv[], char *const env_extra[]);
/* Exit code (0..255), 128+signal if killed by one, or -1 if still running
 * after timeout_ms. */
int itest_wait(struct itest_proc *proc, int timeout_ms);
void itest_signal(struct itest_proc *proc, int sig);
/* SIGTERM, wait up to 5 s, then SIGKILL; reaps; frees the log path. */
void itest_stop(struct itest_proc *proc);
/* The output file's contents (caller frees). */
char *itest_proc_output(const struct itest_proc *proc);

/* Spawn, wait up to timeout_ms (killing on timeout), return the exit code as
 * itest_wait does; *output (if non-NULL) receives stdout+stderr. */
int itest_run(char *const argv[], char *const env_extra[], int timeout_ms, char **output);

/* True when text holds an AddressSanitizer, LeakSanitizer or UBSan report
 * (make SAN=1 builds). itest_run fails on one; tests/run.sh scans the logs of
 * every spawned process for them after the run. */
bool itest_sanitizer_report(const char *text);

/* Wait until `path` exists and holds a positive port number; -1 on timeout. */
int itest_wait_port_file(const char *path, int timeout_ms);
/* Wait until a TCP connect to 127.0.0.1:port succeeds. */
bool itest_wait_tcp(int port, int timeout_ms);

/* HTTP via libcurl. Returns the status (0 on transport error); body is
 * NUL-terminated (caller frees; may be NULL). headers, if non-NULL, gets the
 * raw response headers. */
long itest_http(const char *method, const char *url, const char *req_body, char **body,
		size_t *body_len, char **headers);
long itest_http_get(const char *url, char **body, size_t *body_len);

/* bin/upstream-sim on a free loopback port, started with `--port 0 --port-file`
 * followed by args (NULL-terminated; NULL for none). */
struct itest_sim {
	struct itest_proc proc;
	int port;
	char base[128]; /* http://127.0.0.1:PORT/B552584/EvCharger */
};
void itest_sim_start(struct itest_sim *sim, const char *const args[]);
/* SIGTERM; the simulator must exit 0 within 10 s. */
void itest_sim_stop(struct itest_sim *sim);
/* GET http://127.0.0.1:PORT{path}; as itest_http_get. */
long itest_sim_get(const struct itest_sim *sim, const char *path, char **body, size_t *body_len);
/* GET /__admin/{what} (e.g. "faults?clear=1"), which must answer 200. */
void itest_sim_admin(const struct itest_sim *sim, const char *what);

/* Send raw bytes to 127.0.0.1:port and read the reply until close or
 * timeout_ms; returns bytes read into *reply (caller frees), -1 on error. */
long itest_raw_exchange(int port, const char *request, size_t request_len, int timeout_ms,
			char **reply);

/* A station's value (rkeys.h) with one charger's status set (added, or
 * replacing its own) and the counts recomputed: what realtimed would write.
 * old: the value Redis holds (NULL: none; a malformed one counts as none).
 * Returns a malloc'd string. */
char *itest_live_value_with(const char *old, size_t old_len, const char *chger_id, int stat,
			    int64_t updated, bool quick);

#endif
