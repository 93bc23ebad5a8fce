#include "itest.h"

#include "model.h"
#include "rkeys.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What the atexit sweep undoes: spawned children, private stores, databases.
 * Check forks per test, so these lists live in the test's own process. */
#define MAX_TRACKED 64
static pid_t tracked_pids[MAX_TRACKED];
static char *tracked_store_dirs[MAX_TRACKED];
static char *tracked_dbs[MAX_TRACKED];
static bool sweep_installed;

static void sweep(void)
{
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (tracked_pids[i] > 0) {
			kill(-tracked_pids[i], SIGKILL);
			waitpid(tracked_pids[i], NULL, 0);
			tracked_pids[i] = 0;
		}
	}
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (tracked_store_dirs[i]) {
			char *argv[] = {itest_path("tests/harness/stores.sh"), "stop",
					tracked_store_dirs[i], NULL};
			pid_t pid = fork();
			if (pid == 0) {
				int devnull = open("/dev/null", O_WRONLY);
				dup2(devnull, 1);
				dup2(devnull, 2);
				execv(argv[0], argv);
				_exit(127);
			}
			if (pid > 0)
				waitpid(pid, NULL, 0);
			free(argv[0]);
			free(tracked_store_dirs[i]);
			tracked_store_dirs[i] = NULL;
		}
	}
	const char *admin = getenv("TEST_PG_URL");
	PGconn *conn = admin ? PQconnectdb(admin) : NULL;
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (tracked_dbs[i]) {
			if (conn && PQstatus(conn) == CONNECTION_OK) {
				char sql[256];
				snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
					 tracked_dbs[i]);
				PQclear(PQexec(conn, sql));
			}
			free(tracked_dbs[i]);
			tracked_dbs[i] = NULL;
		}
	}
	if (conn)
		PQfinish(conn);
}

static void install_sweep(void)
{
	if (!sweep_installed) {
		atexit(sweep);
		sweep_installed = true;
	}
}

static void track_pid(pid_t pid, bool add)
{
	install_sweep();
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (add && tracked_pids[i] == 0) {
			tracked_pids[i] = pid;
			return;
		}
		if (!add && tracked_pids[i] == pid) {
			tracked_pids[i] = 0;
			return;
		}
	}
}

static void track_str(char **list, const char *value, bool add)
{
	install_sweep();
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (add && !list[i]) {
			list[i] = strdup(value);
			return;
		}
		if (!add && list[i] && strcmp(list[i], value) == 0) {
			free(list[i]);
			list[i] = NULL;
			return;
		}
	}
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *out = NULL;
	int n = vasprintf(&out, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	return out;
}

const char *itest_env(const char *name)
{
	const char *value = getenv(name);
	ck_assert_msg(value && *value, "environment variable %s is not set (run through tests/run.sh)",
		      name);
	return value;
}

const char *itest_bin(const char *name)
{
	static __thread char path[4096];
	const char *sim = getenv("TEST_SIM_BIN");
	if (sim && *sim && strcmp(name, "upstream-sim") == 0) {
		snprintf(path, sizeof(path), "%s", sim);
		return path;
	}
	const char *dir = getenv("TEST_BIN");
	if (dir && *dir)
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	else
		snprintf(path, sizeof(path), "%s/bin/%s", itest_env("TEST_ROOT"), name);
	return path;
}

char *itest_path(const char *relative)
{
	const char *root = getenv("TEST_ROOT");
	return xasprintf("%s/%s", root ? root : ".", relative);
}

char *itest_tmpdir(const char *label)
{
	static int counter;
	char *dir = xasprintf("%s/%s.%d.%d", itest_env("TEST_TMPDIR"), label ? label : "t",
			      (int)getpid(), ++counter);
	ck_assert_msg(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
	return dir;
}

int itest_free_port(void)
{
	/* Below the kernel's ephemeral range (32768-60999), where the suite's own
	 * outgoing connections would take a port handed out here before the
	 * server that asked for it binds it. Tests run in parallel: random. */
	static unsigned seed;
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (int attempt = 0; attempt < 500; attempt++) {
		int port = 10000 + (int)(rand_r(&seed) % 22000);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		ck_assert_int_ge(fd, 0);
		struct sockaddr_in addr = {.sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					   .sin_port = htons((uint16_t)port)};
		int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
		close(fd);
		if (rc == 0)
			return port;
	}
	ck_abort_msg("no free port below 32000");
	return -1;
}

/* ---- PostgreSQL ---- */

char *itest_create_db(const char *prefix)
{
	static int counter;
	char name[64];
	snprintf(name, sizeof(name), "%s_%d_%d", prefix, (int)getpid(), ++counter);
	PGconn *conn = itest_pg_connect(itest_env("TEST_PG_URL"));
	char *sql = xasprintf("CREATE DATABASE %s", name);
	PQclear(itest_pg_exec(conn, sql));
	free(sql);
	PQfinish(conn);
	track_str(tracked_dbs, name, true);
	/* the admin URL ends in /postgres: swap the database name */
	const char *admin = itest_env("TEST_PG_URL");
	const char *slash = strrchr(admin, '/');
	ck_assert_ptr_nonnull(slash);
	return xasprintf("%.*s/%s", (int)(slash - admin), admin, name);
}

PGconn *itest_pg_connect(const char *url)
{
	PGconn *conn = PQconnectdb(url);
	ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connect: %s", PQerrorMessage(conn));
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
	return conn;
}

PGresult *itest_pg_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	return res;
}

long itest_pg_long(PGconn *conn, const char *sql)
{
	PGresult *res = itest_pg_exec(conn, sql);
	ck_assert_msg(PQntuples(res) >= 1 && PQnfields(res) >= 1, "%s: no rows", sql);
	long value = PQgetisnull(res, 0, 0) ? 0 : strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return value;
}

/* ---- private stores ---- */

static bool store_start(struct itest_store *store, const char *kind)
{
	if (!store->dir) {
		store->dir = itest_tmpdir(kind);
		track_str(tracked_store_dirs, store->dir, true);
	}
	char *script = itest_path("tests/harness/stores.sh");
	char *cmd = xasprintf("%s-start", kind);
	char port[16];
	snprintf(port, sizeof(port), "%d", store->port);
	char *argv[] = {script, cmd, store->dir, port, NULL};
	char *out = NULL;
	int rc = itest_run(argv, NULL, 120000, &out);
	free(script);
	free(cmd);
	if (rc != 0) {
		fprintf(stderr, "itest: %s start failed: %s\n", kind, out ? out : "");
		free(out);
		return false;
	}
	/* the URL is the last line of output */
	char *line = out;
	for (char *nl; (nl = strchr(line, '\n')) && nl[1];)
		line = nl + 1;
	line[strcspn(line, "\n")] = '\0';
	free(store->url);
	store->url = strdup(line);
	const char *colon = strrchr(store->url, ':');
	store->port = colon ? atoi(colon + 1) : 0;
	free(out);
	return store->port > 0;
}

bool itest_redis_start(struct itest_store *store)
{
	return store_start(store, "redis");
}

bool itest_pg_start(struct itest_store *store)
{
	return store_start(store, "pg");
}

bool itest_store_ctl(struct itest_store *store, const char *kind, const char *how)
{
	if (strcmp(how, "start") == 0)
		return store_start(store, kind);
	char *script = itest_path("tests/harness/stores.sh");
	char *cmd = xasprintf("%s-%s", kind, how);
	char *argv[] = {script, cmd, store->dir, NULL};
	int rc = itest_run(argv, NULL, 60000, NULL);
	free(script);
	free(cmd);
	return rc == 0;
}

void itest_store_stop(struct itest_store *store, const char *kind)
{
	if (!store->dir)
		return;
	itest_store_ctl(store, kind, "stop");
	track_str(tracked_store_dirs, store->dir, false);
	free(store->dir);
	free(store->url);
	memset(store, 0, sizeof(*store));
}

/* ---- processes ---- */

long itest_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

bool itest_spawn(struct itest_proc *proc, char *const argv[], char *const env_extra[])
{
	static int counter;
	memset(proc, 0, sizeof(*proc));
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	proc->log = xasprintf("%s/%s.%d.%d.log", itest_env("TEST_TMPDIR"), base, (int)getpid(),
			      ++counter);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		setpgid(0, 0);
		/* die with the test, even when Check kills it on a timeout */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(proc->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
		if (fd < 0)
			_exit(127);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		/* sanitizer builds: the daemons keep their leak check (run.sh) */
		const char *daemon_asan = getenv("TEST_DAEMON_ASAN_OPTIONS");
		if (daemon_asan)
			setenv("ASAN_OPTIONS", daemon_asan, 1);
		for (size_t i = 0; env_extra && env_extra[i]; i++)
			putenv(env_extra[i]);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	proc->pid = pid;
	track_pid(pid, true);
	return true;
}

int itest_wait(struct itest_proc *proc, int timeout_ms)
{
	if (!proc->reaped) {
		long deadline = itest_now_ms() + timeout_ms;
		for (;;) {
			pid_t r = waitpid(proc->pid, &proc->status, WNOHANG);
			if (r == proc->pid) {
				proc->reaped = true;
				track_pid(proc->pid, false);
				/* the group may hold grandchildren; end them with it */
				kill(-proc->pid, SIGKILL);
				break;
			}
			if (r < 0 && errno != EINTR)
				return -1;
			if (itest_now_ms() >= deadline)
				return -1;
			usleep(5000);
		}
	}
	if (WIFEXITED(proc->status))
		return WEXITSTATUS(proc->status);
	if (WIFSIGNALED(proc->status))
		return 128 + WTERMSIG(proc->status);
	return -1;
}

void itest_signal(struct itest_proc *proc, int sig)
{
	if (proc->pid > 0 && !proc->reaped)
		kill(proc->pid, sig);
}

void itest_stop(struct itest_proc *proc)
{
	if (proc->pid > 0 && !proc->reaped) {
		kill(proc->pid, SIGTERM);
		if (itest_wait(proc, 5000) < 0) {
			kill(-proc->pid, SIGKILL);
			itest_wait(proc, 5000);
		}
	}
	free(proc->log);
	proc->log = NULL;
}

/* The file's content, or "" when it cannot be opened (a child's log may not
 * exist yet). */
static char *read_file_or_empty(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (len_out)
			*len_out = 0;
		return strdup("");
	}
	char *data = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&data, &len);
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, mem);
	fclose(mem);
	fclose(f);
	if (len_out)
		*len_out = len;
	return data;
}

char *itest_proc_output(const struct itest_proc *proc)
{
	return read_file_or_empty(proc->log, NULL);
}

char *itest_read_file_len(const char *path, size_t *len)
{
	ck_assert_msg(access(path, R_OK) == 0, "open %s", path);
	return read_file_or_empty(path, len);
}

char *itest_read_file(const char *path)
{
	return itest_read_file_len(path, NULL);
}

int itest_run(char *const argv[], char *const env_extra[], int timeout_ms, char **output)
{
	struct itest_proc proc;
	if (!itest_spawn(&proc, argv, env_extra))
		return -1;
	int rc = itest_wait(&proc, timeout_ms);
	if (rc < 0) {
		kill(-proc.pid, SIGKILL);
		itest_wait(&proc, 5000);
		rc = -1;
	}
	char *out = itest_proc_output(&proc);
	unlink(proc.log);
	free(proc.log);
	/* a sanitizer report of the child fails the test, whatever its exit code */
	ck_assert_msg(!itest_sanitizer_report(out), "%s: sanitizer report:\n%s", argv[0], out);
	if (output)
		*output = out;
	else
		free(out);
	return rc;
}

bool itest_sanitizer_report(const char *text)
{
	return strstr(text, "ERROR: AddressSanitizer") || strstr(text, "ERROR: LeakSanitizer") ||
	       strstr(text, "runtime error:");
}

int itest_wait_port_file(const char *path, int timeout_ms)
{
	long deadline = itest_now_ms() + timeout_ms;
	while (itest_now_ms() < deadline) {
		FILE *f = fopen(path, "r");
		if (f) {
			int port = 0;
			int ok = fscanf(f, "%d", &port);
			fclose(f);
			if (ok == 1 && port > 0)
				return port;
		}
		usleep(10000);
	}
	return -1;
}

bool itest_wait_tcp(int port, int timeout_ms)
{
	long deadline = itest_now_ms() + timeout_ms;
	while (itest_now_ms() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in addr = {.sin_family = AF_INET,
					   .sin_port = htons((uint16_t)port),
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
		close(fd);
		if (ok)
			return true;
		usleep(10000);
	}
	return false;
}

/* ---- HTTP ---- */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	FILE *mem = userdata;
	return fwrite(ptr, size, nmemb, mem);
}

long itest_http(const char *method, const char *url, const char *req_body, char **body,
		size_t *body_len, char **headers)
{
	CURL *curl = curl_easy_init();
	ck_assert_ptr_nonnull(curl);
	char *data = NULL, *head = NULL;
	size_t len = 0, head_len = 0;
	FILE *mem = open_memstream(&data, &len);
	FILE *head_mem = open_memstream(&head, &head_len);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (req_body)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req_body);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, mem);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, head_mem);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
	long status = 0;
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	fclose(mem);
	fclose(head_mem);
	if (body)
		*body = data;
	else
		free(data);
	if (body_len)
		*body_len = len;
	if (headers)
		*headers = head;
	else
		free(head);
	return status;
}

long itest_http_get(const char *url, char **body, size_t *body_len)
{
	return itest_http("GET", url, NULL, body, body_len, NULL);
}

long itest_raw_exchange(int port, const char *request, size_t request_len, int timeout_ms,
			char **reply)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		close(fd);
		return -1;
	}
	size_t sent = 0;
	while (sent < request_len) {
		ssize_t n = send(fd, request + sent, request_len - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	char *data = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&data, &len);
	long deadline = itest_now_ms() + timeout_ms;
	for (;;) {
		long left = deadline - itest_now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)left) <= 0)
			break;
		char chunk[8192];
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n <= 0)
			break;
		fwrite(chunk, 1, (size_t)n, mem);
	}
	close(fd);
	fclose(mem);
	*reply = data;
	return (long)len;
}

/* ---- the upstream simulator ---- */

void itest_sim_start(struct itest_sim *sim, const char *const args[])
{
	char *dir = itest_tmpdir("sim");
	char port_file[4096], bin[4096];
	snprintf(port_file, sizeof(port_file), "%s/port", dir);
	snprintf(bin, sizeof(bin), "%s", itest_bin("upstream-sim"));
	char *argv[48] = {bin, "--port", "0", "--port-file", port_file};
	int n = 5;
	for (int i = 0; args && args[i]; i++) {
		ck_assert_msg(n < 47, "too many simulator arguments");
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	memset(sim, 0, sizeof(*sim));
	ck_assert(itest_spawn(&sim->proc, argv, NULL));
	sim->port = itest_wait_port_file(port_file, 20000);
	ck_assert_msg(sim->port > 0, "upstream-sim wrote no port:\n%s", itest_proc_output(&sim->proc));
	snprintf(sim->base, sizeof(sim->base), "http://127.0.0.1:%d/B552584/EvCharger", sim->port);
	free(dir);
}

void itest_sim_stop(struct itest_sim *sim)
{
	itest_signal(&sim->proc, SIGTERM);
	ck_assert_int_eq(itest_wait(&sim->proc, 10000), 0); /* clean exit on SIGTERM */
	itest_stop(&sim->proc);
}

long itest_sim_get(const struct itest_sim *sim, const char *path, char **body, size_t *body_len)
{
	char url[8192];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", sim->port, path);
	return itest_http_get(url, body, body_len);
}

void itest_sim_admin(const struct itest_sim *sim, const char *what)
{
	char path[4096];
	snprintf(path, sizeof(path), "/__admin/%s", what);
	char *body = NULL;
	long status = itest_sim_get(sim, path, &body, NULL);
	ck_assert_msg(status == 200, "%s: HTTP %ld %s", path, status, body ? body : "");
	free(body);
}

char *itest_live_value_with(const char *old, size_t old_len, const char *chger_id, int stat,
			    int64_t updated, bool quick)
{
	struct rkeys_charger list[64];
	size_t n = 0, at;
	struct rkeys_avail av;
	if (old && rkeys_live_head(old, old_len, &av, &at))
		while (n < 64 && rkeys_live_next(old, old_len, &at, &list[n]) == 1)
			if (list[n].id_len != strlen(chger_id) ||
			    memcmp(list[n].id, chger_id, list[n].id_len) != 0)
				n++;
	ck_assert_int_lt(n, 64);
	list[n++] = (struct rkeys_charger){chger_id, strlen(chger_id), stat, updated, quick};
	unsigned standby = 0, quick_standby = 0;
	for (size_t i = 0; i < n; i++)
		if (list[i].stat == MODEL_STATUS_STANDBY) {
			standby++;
			quick_standby += list[i].quick;
		}
	char *out = malloc(RKEYS_LIVE_HEAD_MAX + n * RKEYS_LIVE_CHARGER_MAX + 1);
	ck_assert_ptr_nonnull(out);
	size_t len = rkeys_live_head_put(out, standby, (unsigned)n, quick_standby);
	for (size_t i = 0; i < n; i++)
		len += rkeys_live_charger_put(out + len, list[i].id, list[i].id_len, list[i].stat,
					      list[i].updated, list[i].quick);
	out[len] = '\0';
	return out;
}
