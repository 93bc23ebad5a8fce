#include "restore.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

extern char **environ;

/* ingestd's exit code when there is no snapshot (ingestd/congestion.h). */
#define INGESTD_EXIT_NO_SNAPSHOT 66

struct restore {
	struct event_base *base;  /* borrowed */
	struct event *sigchld_ev; /* owned */
	restore_done_fn on_done;
	void *ctx;
	pid_t pid; /* the child, 0 when none */
};

static void report(struct restore *r, int status)
{
	char what[64];
	enum restore_outcome outcome = RESTORE_FAILED;
	if (WIFEXITED(status)) {
		int code = WEXITSTATUS(status);
		outcome = code == 0				 ? RESTORE_DONE
			  : code == INGESTD_EXIT_NO_SNAPSHOT ? RESTORE_NO_SNAPSHOT
							     : RESTORE_FAILED;
		snprintf(what, sizeof(what), "exit %d", code);
	} else if (WIFSIGNALED(status)) {
		snprintf(what, sizeof(what), "killed by signal %d", WTERMSIG(status));
	} else {
		snprintf(what, sizeof(what), "status %d", status);
	}
	r->on_done(r->ctx, outcome, what);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct restore *r = arg;
	if (r->pid <= 0)
		return;
	int status = 0;
	pid_t got = waitpid(r->pid, &status, WNOHANG);
	if (got == r->pid) {
		r->pid = 0;
		report(r, status);
	}
}

struct restore *restore_new(struct event_base *base, restore_done_fn on_done, void *ctx)
{
	struct restore *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->base = base;
	r->on_done = on_done;
	r->ctx = ctx;
	r->sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, r);
	if (!r->sigchld_ev || event_add(r->sigchld_ev, NULL) != 0) {
		restore_free(r);
		return NULL;
	}
	return r;
}

void restore_free(struct restore *r)
{
	if (!r)
		return;
	if (r->pid > 0) {
		kill(r->pid, SIGTERM);
		while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {
		}
	}
	if (r->sigchld_ev)
		event_free(r->sigchld_ev);
	free(r);
}

const char *restore_resolve_ingestd(const char *setting, char *buf, size_t buflen)
{
	if (!setting || !*setting)
		return NULL;
	if (strcmp(setting, "auto") != 0) {
		snprintf(buf, buflen, "%s", setting);
		return buf;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(buf, buflen, "%s/ingestd", exe);
	return buf;
}

static bool is_var(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static char *make_var(const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 2;
	char *out = malloc(len);
	if (out)
		snprintf(out, len, "%s=%s", name, value);
	return out;
}

bool restore_start(struct restore *r, const char *ingestd, const char *database_url,
		   const char *redis_url, char *err, size_t errlen)
{
	if (r->pid > 0) {
		snprintf(err, errlen, "a restore is already running (pid %d)", (int)r->pid);
		return false;
	}
	/* everything the child needs is built before fork: after it, only
	 * async-signal-safe calls (libcurl may have started threads) */
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **envp = calloc(n + 3, sizeof(*envp));
	char *db = make_var("DATABASE_URL", database_url ? database_url : "");
	char *rd = make_var("REDIS_URL", redis_url ? redis_url : "");
	bool ok = envp && db && rd;
	if (ok) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (!is_var(environ[i], "DATABASE_URL") && !is_var(environ[i], "REDIS_URL"))
				envp[k++] = environ[i];
		envp[k++] = db;
		envp[k++] = rd;
		envp[k] = NULL;
	}
	char *argv[] = {(char *)ingestd, "congestion", "--restore", NULL};
	pid_t pid = ok ? fork() : -1;
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close_range(3, ~0U, 0);
		execve(ingestd, argv, envp);
		_exit(127);
	}
	int saved = errno;
	free(envp);
	free(db);
	free(rd);
	if (pid < 0) {
		snprintf(err, errlen, "cannot start %s: %s", ingestd,
			 ok ? strerror(saved) : "out of memory");
		return false;
	}
	r->pid = pid;
	log_info("restore: started `%s congestion --restore` (pid %d)", ingestd, (int)pid);
	return true;
}

bool restore_is_running(const struct restore *r)
{
	return r->pid > 0;
}
